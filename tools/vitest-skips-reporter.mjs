// A vitest reporter that records every skipped test with its reason (docs/testing.md: no silent skips).
// tools/test.sh runs vitest with it; each skip becomes one JSON line in $TSRAY_SKIPS_FILE:
//   {"runner":"vitest","where":"<file relative to the repo> > <describe> > <test>","reason":"<note>"}
// The reason is the note given to `ctx.skip(note)`; a skip without a note (`it.skip`, `skipIf`, a skipped
// suite) is recorded with reason "" so that tools/test.sh can name it as a skip without a reason.
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';

/** Records skipped tests and their notes; no output of its own. */
export default class SkipsReporter {
  /** @param {import('vitest/node').Vitest} ctx */
  onInit(ctx) {
    this.root = ctx.config.root;
    this.file = process.env.TSRAY_SKIPS_FILE;
  }

  /** @param {import('vitest/node').TestCase} test */
  onTestCaseResult(test) {
    const result = test.result();
    if (result.state !== 'skipped' || !this.file) return;
    const where = `${relative(this.root, test.module.moduleId)} > ${test.fullName}`;
    appendFileSync(this.file, `${JSON.stringify({ runner: 'vitest', where, reason: result.note ?? '' })}\n`);
  }
}
