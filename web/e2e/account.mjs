// Keys in the browser: node e2e/account.mjs BROKER_URL ARTIFACTS_DIR
// Creates keys and registers as a consumer, downloads the key file, forgets the key, refuses a
// file that is not a key, imports the downloaded file and logs in again. Prints one JSON line
// (the did and the key file's path); exits 1 on any failure.
import fs from "node:fs";
import path from "node:path";
import { args, artifactsDir, fail, withBrowser } from "./browser.mjs";

const [url, artifactsArg] = args("e2e/account.mjs BROKER_URL ARTIFACTS_DIR", 2);
const artifacts = artifactsDir(artifactsArg);

await withBrowser(async (browser) => {
  const page = await browser.newPage({ acceptDownloads: true });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));

  await page.goto(new URL("/account", url).href);
  await page.getByLabel("Role").selectOption("consumer");
  await page.getByRole("button", { name: "Create keys and register" }).click();
  await page.getByText("Logged in as consumer.").waitFor({ timeout: 15000 });
  const did = ((await page.getByTestId("did").textContent()) ?? "").replace("Your did:", "").trim();
  if (!/^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]{44}$/.test(did)) fail(`not a did:key: ${did}`);
  await page.screenshot({ path: path.join(artifacts, "account.png"), fullPage: true });

  // The key file, as the CLI reads it.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download key file" }).click(),
  ]);
  const keyFile = path.join(artifacts, "downloaded-key.hex");
  await download.saveAs(keyFile);
  if (!/^[0-9a-f]{64}$/.test(fs.readFileSync(keyFile, "utf8"))) fail("the key file is not 64 hex characters");

  // Forgotten: nothing of it stays in the page.
  await page.getByRole("button", { name: "Forget the key" }).click();
  await page.getByRole("button", { name: "Create keys and register" }).waitFor();
  if (await page.evaluate(() => window.sessionStorage.length)) fail("the key stayed in session storage");

  // A file that is not a key: refused, saying what a key file is.
  const input = page.getByLabel("Import a key file");
  await input.setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("my password") });
  await page.getByText(/not a Mercato key file/).waitFor();

  // The downloaded file logs the same participant in again.
  await input.setInputFiles(keyFile);
  await page.getByText("Logged in as consumer.").waitFor({ timeout: 15000 });
  if (!(await page.getByTestId("did").textContent()).includes(did)) fail("the imported key is another did");

  if (problems.length) fail(problems.join("; "));
  console.log(JSON.stringify({ did, keyFile }));
});
