import { readFile, writeFile } from 'node:fs/promises';
import test from 'ava';
import { createTwoFilesPatch } from 'diff';
import { BACKENDS } from '../dataplane/backends.js';
import { backends, goldenPath, renderScenario, scenarios } from './helpers/golden.js';

// UPDATE_GOLDEN=1 rewrites the files; review the change as a diff before committing it.
const update = process.env.UPDATE_GOLDEN === '1';

for (const scenario of Object.keys(scenarios)) {
  for (const backend of backends) {
    test(`the ${scenario} scenario renders the golden ${backend} rule set`, async (t) => {
      const { text } = await renderScenario(scenario, backend);
      const path = goldenPath(scenario, backend);
      if (update) await writeFile(path, text);
      const golden = await readFile(path, 'utf8');
      if (text !== golden) t.fail(createTwoFilesPatch('golden', 'rendered', golden, text));
      else t.pass();
    });

    test(`the ${scenario} ${backend} rule set passes the structure checks`, async (t) => {
      const { rendered } = await renderScenario(scenario, backend);
      t.notThrows(() => BACKENDS[backend].check(rendered));
    });
  }
}
