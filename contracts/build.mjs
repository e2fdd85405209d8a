// Compiles contracts/sol with the pinned solcjs and writes contracts/artifacts/<Name>.json
// (abi, bytecode, deployedBytecode, compiler). `--check` rebuilds in memory and fails when the
// committed artifacts differ from what the sources compile to.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const require = createRequire(path.join(root, "package.json"));
const solc = require("solc");

const SOURCES = ["CreditToken", "ParticipantRegistry", "Marketplace", "BillingModels", "UsageSettlement", "CredentialRegistry"];
// Paris: no PUSH0, so the bytecode also runs on GoQuorum and on Besu networks without Shanghai.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "paris",
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function findImport(importPath) {
  const candidates = [path.join(here, importPath), path.join(root, "node_modules", importPath)];
  for (const file of candidates) {
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `import not found: ${importPath} (run npm ci at the repository root)` };
}

const input = {
  language: "Solidity",
  sources: Object.fromEntries(
    SOURCES.map((name) => [`sol/${name}.sol`, { content: fs.readFileSync(path.join(here, "sol", `${name}.sol`), "utf8") }]),
  ),
  settings: SETTINGS,
};

let raw = solc.compile(JSON.stringify(input), { import: findImport });
// solcjs may print a banner line before the JSON.
raw = raw.slice(raw.indexOf("{"));
const output = JSON.parse(raw);
// Warnings fail the build too: the sources stay warning-free.
const errors = (output.errors || []).filter((e) => e.severity !== "info");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const compiler = `solc-js ${solc.version()}`;
const artifacts = {};
for (const name of SOURCES) {
  const c = output.contracts[`sol/${name}.sol`][name];
  artifacts[name] =
    JSON.stringify(
      {
        contractName: name,
        compiler,
        settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion },
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      },
      null,
      2,
    ) + "\n";
}

const outDir = path.join(here, "artifacts");
if (process.argv.includes("--check")) {
  const stale = SOURCES.filter((name) => {
    const file = path.join(outDir, `${name}.json`);
    return !fs.existsSync(file) || fs.readFileSync(file, "utf8") !== artifacts[name];
  });
  if (stale.length > 0) {
    console.error(`artifacts differ from a rebuild of the sources: ${stale.join(", ")}; run: node contracts/build.mjs`);
    process.exit(1);
  }
  console.log(`artifacts match the sources (${SOURCES.length} contracts, ${compiler})`);
} else {
  fs.mkdirSync(outDir, { recursive: true });
  for (const name of SOURCES) fs.writeFileSync(path.join(outDir, `${name}.json`), artifacts[name]);
  for (const name of SOURCES) {
    const size = (JSON.parse(artifacts[name]).deployedBytecode.length - 2) / 2;
    console.log(`${name}: ${size} bytes deployed`);
  }
}
