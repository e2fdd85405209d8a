// A consumer buys in the browser: node e2e/buy.mjs BROKER_URL ARTIFACTS_DIR OFFER PPU_OFFER
// Creates its keys and account key, links the account, takes faucet credits; on PPU_OFFER's page
// a form with two bad amounts names both and reserves nothing; on OFFER's page it reserves the
// first plan, reviews the checked terms, signs and buys, and follows the contract until it is
// active on chain; buying again with the same reservation is answered with the same contract;
// in "Your contracts" it downloads the credential and tops the escrow up. Prints one JSON line
// (contract, key files, credential file); exits 1 on any failure.
import fs from "node:fs";
import path from "node:path";
import { args, artifactsDir, fail, newConsumer, withBrowser } from "./browser.mjs";

const [url, artifactsArg, offer, ppuOffer] = args("e2e/buy.mjs BROKER_URL ARTIFACTS_DIR OFFER PPU_OFFER", 4);
const artifacts = artifactsDir(artifactsArg);

async function save(page, button, file) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: button }).click()]);
  const to = path.join(artifacts, file);
  await download.saveAs(to);
  return to;
}

await withBrowser(async (browser) => {
  const page = await browser.newPage({ acceptDownloads: true });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const purchases = [];
  page.on("request", (r) => {
    if (/\/purchase$/.test(new URL(r.url()).pathname)) purchases.push({ url: r.url(), headers: r.headers(), body: r.postData() });
  });

  try {
    await steps(page, problems, purchases);
  } catch (e) {
    await page.screenshot({ path: path.join(artifacts, "buy-failure.png"), fullPage: true });
    const said = await page.getByRole("status").allTextContents().catch(() => []);
    throw new Error(`${e.message}\npage says: ${JSON.stringify(said)}; ${problems.join("; ")}`, { cause: e });
  }
});

async function steps(page, problems, purchases) {
  // Keys, account, credits.
  await newConsumer(page, url);
  const keyFile = await save(page, "Download key file", "buyer-key.hex");
  const evmFile = await save(page, "Download account key file", "evm-buyer-key.hex");
  await page.screenshot({ path: path.join(artifacts, "account-linked.png"), fullPage: true });

  // Bad amounts: both named, nothing reserved.
  await page.goto(new URL(`/offers/${encodeURIComponent(ppuOffer)}`, url).href);
  await page.getByRole("button", { name: /^Buy / }).first().click();
  await page.getByLabel("Quantity").fill("0");
  await page.getByLabel("Deposit (credits)").fill("12.123456789");
  await page.getByRole("button", { name: "Reserve and review" }).click();
  const errors = page.getByTestId("buy-errors").locator("li");
  await errors.first().waitFor();
  const listed = await errors.allTextContents();
  if (listed.length !== 2 || !/Quantity/.test(listed[0]) || !/Deposit: credits have at most 8 decimals/.test(listed[1]))
    fail(`the form's errors are not both named: ${JSON.stringify(listed)}`);

  // Reserve, review, sign, buy, follow until active on chain.
  await page.goto(new URL(`/offers/${encodeURIComponent(offer)}`, url).href);
  await page.getByRole("button", { name: /^Buy / }).first().click();
  await page.getByLabel("Periods to pay in advance").fill("2");
  await page.getByRole("button", { name: "Reserve and review" }).click();
  await page.getByTestId("review-ok").waitFor({ timeout: 20000 });
  await page.screenshot({ path: path.join(artifacts, "buy-review.png"), fullPage: true });
  await page.getByRole("button", { name: "Sign and buy" }).click();
  await page.getByTestId("contract-state").filter({ hasText: "State: active" }).waitFor({ timeout: 60000 });
  const tx = (await page.getByTestId("tx").textContent()) ?? "";
  if (!/^0x[0-9a-f]{64}$/.test(tx)) fail(`no transaction shown: ${tx}`);
  const heading = (await page.getByTestId("purchase-progress").locator("h3").textContent()) ?? "";
  await page.screenshot({ path: path.join(artifacts, "buy-active.png"), fullPage: true });
  if (purchases.length !== 1 || !purchases[0].headers["idempotency-key"])
    fail(`one purchase with an idempotency key, not ${purchases.length}`);

  // The same purchase sent again (a retry after a lost answer) is answered with the same contract.
  const first = purchases[0];
  const replay = await page.evaluate(async ({ url, headers, body }) => {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: headers.authorization, "idempotency-key": headers["idempotency-key"] },
      body,
    });
    return { status: r.status, contract: (await r.json()).id };
  }, first);
  if (replay.status >= 300 || !heading.includes(replay.contract.slice(0, 12)))
    fail(`the purchase sent again was not answered with the same contract: ${JSON.stringify(replay)}`);

  // Your contracts: live state, credential, top-up.
  await page.getByRole("link", { name: "Your contracts" }).first().click();
  const row = page.getByTestId("contract-row").first();
  await row.getByTestId("contract-row-state").filter({ hasText: "active" }).waitFor({ timeout: 20000 });
  await row.getByRole("button", { name: "Details" }).click();
  await page.getByTestId("runway").waitFor({ timeout: 20000 });
  const credentialFile = await save(page, "Download credential", "credential.json");
  await page.getByLabel("Top up (credits)").fill("5");
  await page.getByRole("button", { name: "Top up", exact: true }).click();
  await page.getByTestId("contract-message").filter({ hasText: "5 credits added to the escrow." }).waitFor({ timeout: 30000 });
  await page.getByTestId("chain").filter({ hasText: /^active: 6 credits in escrow, 1 charged, 1 per 1 h$/ }).waitFor({ timeout: 20000 });
  await page.getByTestId("statement").filter({ hasText: "it matches the chain." }).waitFor({ timeout: 20000 });
  await page.screenshot({ path: path.join(artifacts, "contracts.png"), fullPage: true });
  const contract = (await page.getByTestId("contract-detail").locator("h2 code").textContent()) ?? "";
  if (!contract.startsWith(heading.replace(/^Contract /, "").replace("…", ""))) fail(`${contract} is not the contract bought (${heading})`);

  if (problems.length) fail(problems.join("; "));
  console.log(
    JSON.stringify({ contract, tx, keyFile, evmFile, credentialFile, replayStatus: replay.status }),
  );
  if (!fs.existsSync(credentialFile)) fail("no credential file");
}
