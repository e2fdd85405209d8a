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
