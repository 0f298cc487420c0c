// docs/grafana-dashboard.json stays true to the code: it is valid JSON with
// panels, and every relay_* metric its queries name is one the relay
// registers (a renamed metric would otherwise leave an empty Grafana panel).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const root = join(import.meta.dirname, '..', '..');

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) sources(full, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(readFileSync(full, 'utf8'));
  }
  return out;
}

describe('Grafana dashboard', () => {
  it('queries only metrics the relay registers', () => {
    const dashboard = JSON.parse(readFileSync(join(root, 'docs', 'grafana-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    assert.ok(dashboard.panels.length >= 10);
    const registered = new Set(
      sources(join(root, 'src')).flatMap((s) => [...s.matchAll(/name: '(relay_[a-z_]+)'/g)].map((m) => m[1])),
    );
    for (const panel of dashboard.panels) {
      assert.ok(panel.targets.length > 0, panel.title);
      for (const { expr } of panel.targets) {
        for (const [metric] of expr.matchAll(/relay_[a-z_]+/g)) {
          const base = metric.replace(/_(bucket|sum|count)$/, '');
          assert.ok(registered.has(base), `${panel.title}: ${metric} is not a relay metric`);
        }
      }
    }
  });
});
