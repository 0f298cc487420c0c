// Prints the settings table of docs/configuration.md from src/config/settings.ts:
//   node --import tsx scripts/gen-config-table.ts
import { SETTINGS } from '../src/config/settings.ts';

let out = '| variable | flag | default | meaning |\n|---|---|---|---|\n';
for (const s of Object.values(SETTINGS)) {
  const def = s.default === undefined ? '(unset)' : `\`${String(s.default)}\``;
  out += `| \`${s.env}\` | \`${s.flag}\` | ${def} | ${s.describe} |\n`;
}
process.stdout.write(out);
