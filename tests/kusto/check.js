#!/usr/bin/env node
// Checks KQL text with the real Kusto parser + semantic analyzer
// (Kusto.Language compiled to JS by Bridge.NET: npm @kusto/language-service-next).
//
// stdin : {"schema": <path | object | [objects]>, "queries": [{"name": "...", "text": "..."}]}
//         schema object: {"database": "db", "table": "customEvents",
//                         "columns": [{"name": "timestamp", "type": "datetime"}, ...]}
//         "schema" may be omitted: chargeback/data/customEvents.schema.json is used.
// stdout: [{"name": "...", "diagnostics": [{"severity", "message", "start", "length", "code"}]}]
// All queries are checked in this one process, so the ~0.2 s library load is paid once.
// Exit code 0 = ran (diagnostics may still be present); 2 = bad request / schema.
'use strict';
const fs = require('fs');
const path = require('path');

// bridge.js defines the global `Bridge` runtime; the second file defines global `Kusto`.
require('@kusto/language-service-next/bridge.min.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.min.js');
const K = Kusto.Language; // eslint-disable-line no-undef
const S = K.Symbols;

function fail(msg) {
  process.stderr.write(`check.js: ${msg}\n`);
  process.exit(2);
}

// Build GlobalState.Default + one database holding the declared tables.
function buildGlobals(schema) {
  if (schema === undefined || schema === null) schema = path.join(__dirname, '..', '..', 'chargeback', 'data', 'customEvents.schema.json');
  if (typeof schema === 'string') schema = JSON.parse(fs.readFileSync(schema, 'utf8'));
  const docs = Array.isArray(schema) ? schema : [schema];
  const tables = docs.map((doc) => {
    if (!doc.table || !Array.isArray(doc.columns)) fail('schema needs "table" and "columns"');
    const cols = doc.columns.map(({ name, type }) => {
      const t = S.ScalarTypes.GetSymbol(type); // 'datetime', 'string', 'dynamic', 'int', 'real', ...
      if (!t) fail(`unknown Kusto type '${type}' for column ${doc.table}.${name}`);
      return new S.ColumnSymbol(name, t);
    });
    return new S.TableSymbol.$ctor4(doc.table, cols); // TableSymbol(name, ColumnSymbol[])
  });
  const db = new S.DatabaseSymbol.ctor(docs[0].database || 'db', tables); // DatabaseSymbol(name, Symbol[])
  return K.GlobalState.Default.WithDatabase(db); // also makes it the default database
}

// Parse + bind one query; GetDiagnostics() returns syntax AND semantic diagnostics
// (unknown tables/columns/functions, type errors). `let` and `declare query_parameters`
// statements are handled by the parser/binder itself.
function check(globals, text) {
  const code = K.KustoCode.ParseAndAnalyze(text, globals);
  const list = code.GetDiagnostics(); // Bridge IReadOnlyList: .Count / .getItem(i)
  const out = [];
  for (let i = 0; i < list.Count; i++) {
    const d = list.getItem(i);
    out.push({ severity: d.Severity, message: d.Message, start: d.Start, length: d.Length, code: d.Code });
  }
  return out;
}

let req;
try {
  req = JSON.parse(fs.readFileSync(0, 'utf8'));
} catch (e) {
  fail(`stdin is not JSON: ${e.message}`);
}
if (!req || !Array.isArray(req.queries)) fail('request needs a "queries" array');

let globals;
try {
  globals = buildGlobals(req.schema);
} catch (e) {
  fail(`cannot load schema: ${e.message}`);
}

const results = req.queries.map(({ name, text }) => {
  try {
    return { name, diagnostics: check(globals, String(text)) };
  } catch (e) {
    // A crash inside the library is reported as an error, never swallowed.
    return { name, diagnostics: [{ severity: 'Error', message: `check.js exception: ${e}`, start: 0, length: 0, code: 'CHECKJS' }] };
  }
});
process.stdout.write(JSON.stringify(results) + '\n');
