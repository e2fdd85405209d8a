// The marketplace in a real browser (Debian's chromium, driven by playwright-core):
//   node e2e/marketplace.mjs BROKER_URL ARTIFACTS_DIR EXPECTED_TOTAL
// Checks that the page lists every plan, that a class filter narrows to its facet's count, that a
// resource filter typed in cores and GiB counts what the API counts, and that bad filters are all
// named at once without a search; writes screenshots (desktop and phone
// width) to ARTIFACTS_DIR. Prints one JSON line with the figures (milliseconds from navigation to
// the first results, gzipped bytes of the first page's JavaScript); exits 1 on any failure.
import path from "node:path";
import zlib from "node:zlib";
import { args, artifactsDir, fail, withBrowser } from "./browser.mjs";

const [url, artifactsArg, expectedTotal] = args("e2e/marketplace.mjs BROKER_URL ARTIFACTS_DIR EXPECTED_TOTAL", 3);
const artifacts = artifactsDir(artifactsArg);

await withBrowser(async (browser) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));

  // First page: every plan counted, the first page of them listed.
  await page.goto(url);
  const rows = page.getByTestId("plan");
  await rows.first().waitFor({ timeout: 15000 });
  const resultsMs = await page.evaluate(() => performance.now());
  const status = page.getByText(/^\d+ plan\(s\)$/);
  await status.waitFor();
  const total = Number((await status.textContent()).split(" ")[0]);
  if (total !== Number(expectedTotal)) fail(`the page counts ${total} plans, the catalog has ${expectedTotal}`);
  const shown = await rows.count();
  if (shown !== Math.min(20, total)) fail(`${shown} rows on the first page of ${total}`);
  await page.screenshot({ path: path.join(artifacts, "marketplace.png"), fullPage: true });

  // Two plans side by side.
  const compareBoxes = page.getByRole("checkbox", { name: /^Compare / });
  await compareBoxes.nth(0).check();
  await compareBoxes.nth(1).check();
  const compare = page.getByTestId("compare");
  await compare.waitFor();
  const columns = await compare.locator("tr").first().locator("td").count();
  if (columns !== 2) fail(`the comparison shows ${columns} plans, not the 2 picked`);
  await page.screenshot({ path: path.join(artifacts, "compare.png"), fullPage: true });

  // An offer's page: its plans, its provider's reputation; a link that survives a reload.
  const firstOffer = rows.first().getByRole("link");
  const offerName = (await firstOffer.textContent()).trim();
  await firstOffer.click();
  const offerAlert = page.getByRole("alert");
  await Promise.race([
    page.getByRole("heading", { level: 1, name: offerName }).waitFor(),
    offerAlert.waitFor().then(async () => fail(`the offer page says: ${await offerAlert.textContent()}`)),
  ]);
  if ((await page.getByTestId("offer-plan").count()) < 1) fail(`${offerName} shows no plans`);
  await page.getByTestId("reputation").waitFor();
  await page.screenshot({ path: path.join(artifacts, "offer.png"), fullPage: true });
  await page.reload();
  await page.getByRole("heading", { level: 1, name: offerName }).waitFor();
  await page.goBack();
  await rows.first().waitFor();

  // The GPU filter narrows to the count its facet announced.
  const facets = await page.getByLabel("Facets").textContent();
  const gpuFacet = Number(/gpu: (\d+)/.exec(facets)?.[1] ?? NaN);
  if (!(gpuFacet > 0)) fail(`no GPU plans in the facets: ${facets}`);
  await page.getByRole("checkbox", { name: "gpu", exact: true }).check();
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText(`${gpuFacet} plan(s)`, { exact: true }).waitFor({ timeout: 10000 });

  // A resource filter in people's units (cores, GiB) asks the catalog in its own (millicores,
  // MiB): the page counts what the API counts for the same query.
  await page.getByRole("checkbox", { name: "gpu", exact: true }).uncheck();
  await page.getByLabel("Cores at least", { exact: true }).fill("8");
  await page.getByLabel("Memory at least (GiB)", { exact: true }).fill("16");
  await page.getByRole("button", { name: "Search" }).click();
  const api = await (await fetch(new URL("/v1/offers?minCpuMillicores=8000&minMemoryMib=16384&limit=1", url))).json();
  if (!(api.total > 0 && api.total < total)) fail(`the resource filter is not a narrowing one here: ${api.total} of ${total}`);
  await page.getByText(`${api.total} plan(s)`, { exact: true }).waitFor({ timeout: 10000 });
  await page.getByLabel("Cores at least", { exact: true }).fill("");
  await page.getByLabel("Memory at least (GiB)", { exact: true }).fill("");
  await page.getByRole("checkbox", { name: "gpu", exact: true }).check();
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText(`${gpuFacet} plan(s)`, { exact: true }).waitFor({ timeout: 10000 });

  // Bad filters: every reason at once, and no search.
  await page.getByLabel("Price ceiling (credits per unit-hour)").fill("cheap");
  await page.getByLabel("Country").fill("Germany");
  await page.getByLabel("Green energy at least (%)").fill("150");
  await page.getByRole("button", { name: "Search" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  const reasons = await alert.locator("li").allTextContents();
  if (reasons.length !== 3 || !["Price ceiling", "Country", "Green energy at least"].every((f) => reasons.some((r) => r.startsWith(f))))
    fail(`the form named ${JSON.stringify(reasons)}`);
  if (!(await page.getByText(`${gpuFacet} plan(s)`, { exact: true }).isVisible())) fail("a bad search changed the results");

  // Keyboard: the search field is reachable by Tab and labelled.
  await page.keyboard.press("Tab");
  // A phone's width: the same page, stacked.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(artifacts, "marketplace-phone.png"), fullPage: true });

  if (problems.length) fail(problems.join("; "));
  // The JavaScript the first page loads, gzipped (the scripts index.html names).
  const html = await (await fetch(url)).text();
  let scriptBytes = 0;
  for (const [, src] of html.matchAll(/<script[^>]+src="([^"]+)"/g)) {
    const body = Buffer.from(await (await fetch(new URL(src, url))).arrayBuffer());
    scriptBytes += zlib.gzipSync(body, { level: 9 }).length;
  }
  console.log(JSON.stringify({ resultsMs: Math.round(resultsMs), total, gpu: gpuFacet, scriptGzipBytes: scriptBytes }));
});
