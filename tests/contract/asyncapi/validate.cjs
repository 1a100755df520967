// Validates an AsyncAPI document with the official parser
// (@asyncapi/parser, installed by scripts/test.sh from package-lock.json).
// Prints every diagnostic; exits 1 on any error-level one (or a warning,
// with --strict), 2 on a usage or I/O error.
'use strict';
const { Parser, fromFile, DiagnosticSeverity } = require('@asyncapi/parser');

const args = process.argv.slice(2);
const strict = args.includes('--strict');
const file = args.find((arg) => !arg.startsWith('--'));
if (!file) {
  console.error('usage: validate.cjs FILE [--strict]');
  process.exit(2);
}
const SEVERITY = { 0: 'error', 1: 'warning', 2: 'info', 3: 'hint' };

fromFile(new Parser(), file)
  .parse()
  .then(({ document, diagnostics }) => {
    for (const d of diagnostics) {
      const where = (d.path || []).join('.') || '(root)';
      console.log(`${SEVERITY[d.severity] || d.severity}\t${d.code}\t${where}\t${d.message}`);
    }
    const count = (severity) => diagnostics.filter((d) => d.severity === severity).length;
    const errors = count(DiagnosticSeverity.Error);
    const warnings = count(DiagnosticSeverity.Warning);
    console.log(`${file}: ${errors} error(s), ${warnings} warning(s)`);
    if (!document || errors > 0 || (strict && warnings > 0)) process.exit(1);
    console.log(`parsed AsyncAPI ${document.version()}: ${document.channels().length} channels, ${document.messages().length} messages`);
  })
  .catch((error) => {
    console.error((error && error.stack) || error);
    process.exit(2);
  });
