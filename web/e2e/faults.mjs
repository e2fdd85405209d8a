// What the page does when the broker lies or goes away:
//   node e2e/faults.mjs BROKER_URL ARTIFACTS_DIR OFFER PPU_OFFER
// A consumer made in the page reserves OFFER's first plan through a dishonest broker (its answer
// rewritten in flight to pay another account and to ask a larger deposit): the review names both,
// and nothing can be signed; the same for PPU_OFFER with a usage price inflated in a document
// whose hash and CID were made to agree. Then the broker's answers are cut: a reservation while it does not
// answer says so; a purchase whose answer is lost after the broker took it says that buying again
// charges nothing twice, and buying again gives the contract, active on chain. Two tabs buying at
// once (the other buys PPU_OFFER with a deposit of 2 credits): the purchase whose deposit permit
// the other tab spent fails, saying so, and moves nothing.
// Prints one JSON
// line (the faults named, the contract); exits 1 on any failure. The broker itself is real: only
// what reaches the page is changed (Playwright's request routing).
import path from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { base32nopad } from "@scure/base";
import { keccak256, toHex } from "viem";
import { args, artifactsDir, fail, newConsumer, withBrowser } from "./browser.mjs";

const [url, artifactsArg, offer, ppuOffer] = args("e2e/faults.mjs BROKER_URL ARTIFACTS_DIR OFFER PPU_OFFER", 4);
const artifacts = artifactsDir(artifactsArg);

await withBrowser(async (browser) => {
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const purchases = [];
  page.on("request", (r) => {
    if (/\/purchase$/.test(new URL(r.url()).pathname)) purchases.push(r.url());
  });
  try {
    const out = await steps(page, purchases);
    if (problems.length) fail(problems.join("; "));
    console.log(JSON.stringify(out));
  } catch (e) {
    await page.screenshot({ path: path.join(artifacts, "faults-failure.png"), fullPage: true });
    const said = await page.getByRole("alert").allTextContents().catch(() => []);
    throw new Error(`${e.message}\npage says: ${JSON.stringify(said)}; ${problems.join("; ")}`, { cause: e });
  }
});

async function reserve(page) {
  await page.goto(new URL(`/offers/${encodeURIComponent(offer)}`, url).href);
  await page.getByRole("button", { name: /^Buy / }).first().click();
  await page.getByRole("button", { name: "Reserve and review" }).click();
}

async function steps(page, purchases) {
  await newConsumer(page, url);

  // A dishonest broker: the reservation pays another account and asks a larger deposit.
  await page.route("**/v1/reservations", async (route) => {
    const response = await route.fetch();
    const r = await response.json();
    r.terms.provider = "0x000000000000000000000000000000000000dEaD";
    r.terms.deposit = (BigInt(r.terms.deposit) * 10n).toString();
    await route.fulfill({ response, json: r });
  });
  await reserve(page);
  await page.getByTestId("review-faults").waitFor({ timeout: 20000 });
  const faults = await page.getByTestId("review-faults").locator("li").allTextContents();
  for (const what of ["the provider", "the deposit"])
    if (!faults.some((f) => f.startsWith(what))) fail(`the review does not name ${what}: ${JSON.stringify(faults)}`);
  if (await page.getByRole("button", { name: "Sign and buy" }).isEnabled()) fail("a dishonest reservation can be signed");
  await page.screenshot({ path: path.join(artifacts, "faults-dishonest.png"), fullPage: true });
  await page.unroute("**/v1/reservations");

  // A subtler one: a usage price ten times the plan's, in a document whose hash, CID and signed
  // terms all agree with it. Only the comparison with the offer's plan can tell.
  await page.route("**/v1/reservations", async (route) => {
    const response = await route.fetch();
    const r = await response.json();
    const doc = JSON.parse(r.document);
    const inflated = (BigInt(doc.usage.prices.networkGb) * 10n).toString();
    doc.usage.prices.networkGb = inflated;
    r.terms.prices.networkGb = inflated;
    r.document = JSON.stringify(doc);
    const bytes = new Uint8Array(Buffer.from(r.document, "utf8"));
    r.terms.termsHash = keccak256(toHex(bytes));
    r.terms.termsCid = `b${base32nopad.encode(Uint8Array.of(0x01, 0x55, 0x12, 0x20, ...sha256(bytes))).toLowerCase()}`;
    r.documentCid = r.terms.termsCid;
    await route.fulfill({ response, json: r });
  });
  await page.goto(new URL(`/offers/${encodeURIComponent(ppuOffer)}`, url).href);
  await page.getByRole("button", { name: /^Buy / }).first().click();
  await page.getByLabel("Deposit (credits)").fill("2");
  await page.getByRole("button", { name: "Reserve and review" }).click();
  await page.getByTestId("review-faults").waitFor({ timeout: 20000 });
  const priced = await page.getByTestId("review-faults").locator("li").allTextContents();
  if (JSON.stringify(priced) !== JSON.stringify(["the usage prices against the plan's"]))
    fail(`an inflated usage price is not the one fault named: ${JSON.stringify(priced)}`);
  if (await page.getByRole("button", { name: "Sign and buy" }).isEnabled()) fail("an inflated usage price can be signed");
  await page.unroute("**/v1/reservations");

  // The broker does not answer: the page says so and what to do.
  await page.route("**/v1/reservations", (route) => route.abort("connectionrefused"));
  await reserve(page);
  const away = (await page.getByTestId("buy-errors").textContent({ timeout: 10000 })) ?? "";
  if (!away.includes("The reservation failed: the broker does not answer; check that it runs, then try again"))
    fail(`no message for a broker that does not answer: ${away}`);
  await page.unroute("**/v1/reservations");

  // The purchase reaches the broker, its answer is lost: buying again is the same purchase.
  await reserve(page);
  await page.getByTestId("review-ok").waitFor({ timeout: 20000 });
  await page.route("**/purchase", async (route) => {
    await route.fetch();
    await route.abort("connectionreset");
  });
  await page.getByRole("button", { name: "Sign and buy" }).click();
  const lost = (await page.getByTestId("buy-errors").textContent({ timeout: 20000 })) ?? "";
  if (!lost.includes("Nothing is charged twice: buying again sends the same request"))
    fail(`no message for a lost answer: ${lost}`);
  await page.unroute("**/purchase");
  await page.getByRole("button", { name: "Sign and buy" }).click();
  await page.getByTestId("contract-state").filter({ hasText: "State: active" }).waitFor({ timeout: 60000 });
  const heading = (await page.getByTestId("purchase-progress").locator("h3").textContent()) ?? "";
  if (purchases.length !== 2) fail(`two purchase requests (the lost one and the retry), not ${purchases.length}`);

  // Two tabs buy at once: the second tab (a copy of this tab's keys) buys while this one reviews,
  // so this one's signed deposit permit is spent; the chain refuses it and no credit moves.
  await reserve(page);
  await page.getByTestId("review-ok").waitFor({ timeout: 20000 });
  const [other] = await Promise.all([
    page.context().waitForEvent("page"),
    page.evaluate((href) => window.open(href), new URL(`/offers/${encodeURIComponent(ppuOffer)}`, url).href),
  ]);
  await other.getByRole("button", { name: /^Buy / }).first().click();
  await other.getByLabel("Deposit (credits)").fill("2");
  await other.getByRole("button", { name: "Reserve and review" }).click();
  await other.getByTestId("review-ok").waitFor({ timeout: 20000 });
  await other.getByRole("button", { name: "Sign and buy" }).click();
  await other.getByTestId("contract-state").filter({ hasText: "State: active" }).waitFor({ timeout: 60000 });
  await other.close();
  await page.getByRole("button", { name: "Sign and buy" }).click();
  const refusal = page.getByRole("alert").filter({ hasText: /The purchase failed/ });
  const failed = (await refusal.textContent({ timeout: 60000 })) ?? "";
  if (!/their permit was no longer valid .* nothing was charged; reserve again and sign again\. No credit moved\.$/.test(failed))
    fail(`the failure does not say what happened and what to do: ${failed}`);
  await page.screenshot({ path: path.join(artifacts, "faults-failed.png"), fullPage: true });
  return { faults, priced, away, lost, failed, contract: heading.replace(/^Contract /, "").replace("…", "") };
}
