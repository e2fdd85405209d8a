// A purchase across a broker restart: node e2e/restart.mjs BROKER_URL ARTIFACTS_DIR OFFER SIGNAL_DIR
// A consumer made in the page reserves OFFER and reviews the terms; the test stops the broker
// (SIGNAL_DIR/at-review, then SIGNAL_DIR/broker-down); buying says the broker does not answer
// and that buying again charges nothing twice (SIGNAL_DIR/saw-down); the test starts the broker
// again (SIGNAL_DIR/broker-up) and buying again gives the contract, followed until active on
// chain. Prints one JSON line; exits 1 on any failure.
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { args, artifactsDir, fail, newConsumer, withBrowser } from "./browser.mjs";

const [url, artifactsArg, offer, signals] = args("e2e/restart.mjs BROKER_URL ARTIFACTS_DIR OFFER SIGNAL_DIR", 4);
const artifacts = artifactsDir(artifactsArg);

const signal = (name) => fs.writeFileSync(path.join(signals, name), "");
/** Waits for the test's signal `name` (a file), up to a minute. */
async function awaitSignal(name) {
  const at = path.join(signals, name);
  const until = Date.now() + 60000;
  while (!fs.existsSync(at)) {
    if (Date.now() > until) fail(`no ${name} from the test`);
    await sleep(50);
  }
}

await withBrowser(async (browser) => {
  const page = await browser.newPage();
  try {
    await newConsumer(page, url);
    await page.goto(new URL(`/offers/${encodeURIComponent(offer)}`, url).href);
    await page.getByRole("button", { name: /^Buy / }).first().click();
    await page.getByRole("button", { name: "Reserve and review" }).click();
    await page.getByTestId("review-ok").waitFor({ timeout: 20000 });
    signal("at-review");
    await awaitSignal("broker-down");

    await page.getByRole("button", { name: "Sign and buy" }).click();
    const down = (await page.getByTestId("buy-errors").textContent({ timeout: 20000 })) ?? "";
    if (!down.includes("the broker does not answer") || !down.includes("Nothing is charged twice"))
      fail(`no message for a stopped broker: ${down}`);
    await page.screenshot({ path: path.join(artifacts, "restart-down.png"), fullPage: true });
    signal("saw-down");
    await awaitSignal("broker-up");

    await page.getByRole("button", { name: "Sign and buy" }).click();
    await page.getByTestId("contract-state").filter({ hasText: "State: active" }).waitFor({ timeout: 60000 });
    const heading = (await page.getByTestId("purchase-progress").locator("h3").textContent()) ?? "";
    console.log(JSON.stringify({ down, contract: heading.replace(/^Contract /, "").replace("…", "") }));
  } catch (e) {
    await page.screenshot({ path: path.join(artifacts, "restart-failure.png"), fullPage: true });
    const said = await page.getByRole("alert").allTextContents().catch(() => []);
    throw new Error(`${e.message}\npage says: ${JSON.stringify(said)}`, { cause: e });
  }
});
