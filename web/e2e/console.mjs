// The provider console and the auditor explorer in a browser:
//   node e2e/console.mjs BROKER_URL ARTIFACTS_DIR AUDITOR_KEY_FILE EARNER_KEY_FILE EARNER_EVM_FILE
// A provider creates its keys, links its account, registers its configuration, sees a bad offer's
// errors all at once, publishes an offer from the form (id console-compute) and a second version
// of it from the same form, then accepts the purchase proposed to it (made by the test
// meanwhile). A provider with earnings (its CLI key files imported) sees its running contract's
// reported usage and withdraws its earnings with a transaction its account signs in the page. An
// auditor (its key file imported) sees the index agree with the chain, the contracts, and checks
// a settled record's Merkle proof in the page. Prints one JSON line; exits 1 on any failure.
import path from "node:path";
import { args, artifactsDir, fail, withBrowser } from "./browser.mjs";

const [url, artifactsArg, auditorKey, earnerKey, earnerEvm] = args(
  "e2e/console.mjs BROKER_URL ARTIFACTS_DIR AUDITOR_KEY_FILE EARNER_KEY_FILE EARNER_EVM_FILE",
  5,
);
const artifacts = artifactsDir(artifactsArg);

async function provider(page) {
  await page.goto(new URL("/account", url).href);
  await page.getByLabel("Role").selectOption("provider");
  await page.getByRole("button", { name: "Create keys and register" }).click();
  await page.getByText("Logged in as provider.").waitFor({ timeout: 15000 });
  await page.getByRole("button", { name: "Create an account key" }).click();
  await page.getByRole("button", { name: "Link this account" }).click();
  await page.getByText(/Linked to your did\./).waitFor({ timeout: 30000 });

  await page.getByRole("link", { name: "Provider console" }).click();
  await page.getByRole("textbox", { name: /^Configuration \(YAML/ }).fill("name: console-edge\nendpoints:\n  - name: api\n    url: https://edge.example:8443\n");
  await page.getByRole("button", { name: "Register configuration" }).click();
  await page.getByTestId("config-message").filter({ hasText: /Configuration version 1 registered on chain/ }).waitFor({ timeout: 30000 });
  await page.getByTestId("config-current").filter({ hasText: "Version 1, CID b" }).waitFor();

  // A bad offer: every wrong field named at once, nothing published.
  const form = page.getByRole("form", { name: "New offer" });
  await form.getByLabel("Offer id").fill("Bad Id");
  await form.getByLabel("Country").fill("de");
  await form.getByLabel("Price per period (credits)").fill("abc");
  await form.getByRole("button", { name: "Publish offer" }).click();
  const errors = await page.getByTestId("offer-errors").locator("li").allTextContents();
  for (const field of ["Offer id", "Name", "Country", "Region", "Latitude", "Cores per unit", "Plan id", "Price"])
    if (!errors.some((e) => e.startsWith(`${field}:`))) fail(`the form does not name ${field}: ${JSON.stringify(errors)}`);
  await page.screenshot({ path: path.join(artifacts, "provider-errors.png"), fullPage: true });

  const values = {
    "Offer id": "console-compute",
    Name: "Console compute",
    Country: "DE",
    Region: "eu-central",
    City: "Berlin",
    Latitude: "52.52",
    Longitude: "13.40",
    "Cores per unit": "4",
    "Memory per unit (GiB)": "8",
    "Plan id": "small",
    "Plan name": "4 cores by the hour",
    "Units sold at once": "3",
    "Price per period (credits)": "0.75",
  };
  for (const [label, value] of Object.entries(values)) await form.getByLabel(label, { exact: true }).fill(value);
  await form.getByRole("button", { name: "Publish offer" }).click();
  await page.getByTestId("offer-message").filter({ hasText: "Offer console-compute version 1 published." }).waitFor({ timeout: 20000 });

  // A new version, edited in the same form (filled with version 1).
  await page.getByRole("button", { name: "Edit console-compute" }).click();
  const edit = page.getByRole("form", { name: "Edit offer" });
  const name = edit.getByLabel("Name", { exact: true });
  if ((await name.inputValue()) !== "Console compute") fail(`the form is not filled with the offer: ${await name.inputValue()}`);
  if ((await edit.getByLabel("Price per period (credits)").inputValue()) !== "0.75") fail("the form does not show the price in credits");
  await name.fill("Console compute, version 2");
  await edit.getByRole("button", { name: "Publish new version" }).click();
  await page.getByTestId("offer-message").filter({ hasText: "Offer console-compute version 2 published." }).waitFor({ timeout: 20000 });
  await page.screenshot({ path: path.join(artifacts, "provider.png"), fullPage: true });

  // The test buys it meanwhile: the proposal appears (event stream) and is accepted here.
  await page.getByTestId("proposal").first().waitFor({ timeout: 90000 });
  await page.getByTestId("proposal").first().getByRole("button", { name: "Accept" }).click();
  await page.getByTestId("proposals-message").filter({ hasText: /accepted: it opens on chain/ }).waitFor({ timeout: 20000 });
  await page.getByTestId("running").first().waitFor({ timeout: 30000 });
}

async function earner(page) {
  await page.goto(new URL("/account", url).href);
  await page.getByLabel("Import a key file").setInputFiles(earnerKey);
  await page.getByText("Logged in as provider.").waitFor({ timeout: 15000 });
  await page.getByLabel("Import an account key file").setInputFiles(earnerEvm);
  await page.getByText(/Linked to your did\./).waitFor({ timeout: 15000 });
  await page.getByRole("link", { name: "Provider console" }).click();
  const usage = (await page.getByTestId("running-usage").first().textContent({ timeout: 20000 })) ?? "";
  if (!/usage reported: \d+ record\(s\), 0\.02 credits, of which 0\.02 settled/.test(usage)) fail(`no reported usage: ${usage}`);
  const before = (await page.getByTestId("earnings").filter({ hasText: /Withdrawable: (?!0 credits)\d/ }).textContent({ timeout: 20000 })) ?? "";
  await page.getByRole("button", { name: "Withdraw earnings" }).click();
  const done = (await page.getByTestId("earnings-message").filter({ hasText: /^Withdrew / }).textContent({ timeout: 30000 })) ?? "";
  await page.getByTestId("earnings").filter({ hasText: "Withdrawable: 0 credits." }).waitFor({ timeout: 20000 });
  await page.screenshot({ path: path.join(artifacts, "provider-earnings.png"), fullPage: true });
  // Nothing left: the page says so, and sends nothing.
  await page.getByRole("button", { name: "Withdraw earnings" }).click();
  const nothing = (await page.getByTestId("earnings-message").filter({ hasText: /failed/ }).textContent({ timeout: 10000 })) ?? "";
  if (!nothing.includes("no earnings to withdraw")) fail(`no refusal of an empty withdrawal: ${nothing}`);
  return { usage, before, withdrew: done };
}

async function auditor(page) {
  await page.goto(new URL("/account", url).href);
  await page.getByLabel("Import a key file").setInputFiles(auditorKey);
  await page.getByText("Logged in as auditor.").waitFor({ timeout: 15000 });
  await page.getByRole("link", { name: "Ledger explorer" }).click();
  await page.getByTestId("selfcheck").filter({ hasText: "The index agrees with the chain" }).waitFor({ timeout: 20000 });
  await page.getByTestId("audit-contract").first().waitFor({ timeout: 20000 });
  const contracts = await page.getByTestId("audit-contract").count();
  await page.getByTestId("batch").first().getByRole("button", { name: "Check a record's proof" }).click();
  const result = (await page.getByTestId("proof-result").textContent({ timeout: 20000 })) ?? "";
  if (!result.startsWith("Checked in this page")) fail(`the proof was not checked: ${result}`);
  await page.screenshot({ path: path.join(artifacts, "explorer.png"), fullPage: true });
  // A key of another role: the console says so instead of failing on the first call.
  await page.getByRole("link", { name: "Provider console" }).click();
  const refusal = (await page.getByTestId("wrong-role").textContent({ timeout: 10000 })) ?? "";
  if (!refusal.includes("registered as auditor, not as a provider")) fail(`no role refusal: ${refusal}`);
  return { contracts, result };
}

await withBrowser(async (browser) => {
  const problems = [];
  const run = async (name, steps) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on("pageerror", (e) => problems.push(`${name}: page error: ${e.message}`));
    try {
      return await steps(page);
    } catch (e) {
      await page.screenshot({ path: path.join(artifacts, `${name}-failure.png`), fullPage: true });
      const said = await page.getByRole("status").allTextContents().catch(() => []);
      throw new Error(`${name}: ${e.message}\npage says: ${JSON.stringify(said)}`, { cause: e });
    } finally {
      await context.close();
    }
  };
  await run("provider", provider);
  const earned = await run("earner", earner);
  const audit = await run("auditor", auditor);
  if (problems.length) fail(problems.join("; "));
  console.log(JSON.stringify({ ...audit, ...earned }));
});
