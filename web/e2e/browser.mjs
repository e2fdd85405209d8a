// What the browser tests share: their arguments, the artifacts directory, a failure that says
// what went wrong, and Debian's chromium started headless by playwright-core.
import { chromium } from "playwright-core";
import fs from "node:fs";

/** The script's arguments, or its usage and exit 2. */
export function args(usage, count) {
  const given = process.argv.slice(2);
  if (given.length < count || given.slice(0, count).some((a) => !a)) {
    console.error(`usage: node ${usage}`);
    process.exit(2);
  }
  return given;
}

export function fail(message) {
  throw new Error(message);
}

export function artifactsDir(dir) {
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Runs `test` with a fresh headless browser, closed afterwards whatever happens. */
export async function withBrowser(test) {
  const browser = await chromium.launch({
    executablePath: process.env.MERCATO_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // The suite may run as root, where Chromium's sandbox cannot start.
    args: ["--no-sandbox"],
  });
  try {
    await test(browser);
  } finally {
    await browser.close();
  }
}

/** A consumer made in `page`: keys registered, an account key created and linked, faucet credits. */
export async function newConsumer(page, url) {
  await page.goto(new URL("/account", url).href);
  await page.getByRole("button", { name: "Create keys and register" }).click();
  await page.getByText("Logged in as consumer.").waitFor({ timeout: 15000 });
  await page.getByRole("button", { name: "Create an account key" }).click();
  await page.getByText("Not linked yet.").waitFor({ timeout: 15000 });
  await page.getByLabel("Import an account key file").waitFor({ state: "detached" });
  await page.getByRole("button", { name: "Link this account" }).click();
  await page.getByText(/Linked to your did\. Credits: 0\./).waitFor({ timeout: 30000 });
  await page.getByRole("button", { name: "Get credits" }).click();
  await page.getByText(/Credits: 1000\./).waitFor({ timeout: 30000 });
}
