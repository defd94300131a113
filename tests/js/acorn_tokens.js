// Reads a JSON array of scripts on stdin; writes, for each, acorn's tokens as [label, start, end]
// (or {"error": message}). acorn is found at $GATE_ACORN_JS (its dist/acorn.js). Used by
// tests/test_jsscan_acorn.py as an independent tokenizer to compare gate.jsscan with.
"use strict";
const acorn = require(process.env.GATE_ACORN_JS);
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((src) => {
    try {
      const tokens = [];
      for (const t of acorn.tokenizer(src, {ecmaVersion: "latest", sourceType: "script", allowHashBang: true})) {
        tokens.push([t.type.label, t.start, t.end]);
      }
      return tokens;
    } catch (e) {
      return {error: String(e.message)};
    }
  });
  process.stdout.write(JSON.stringify(out));
});
