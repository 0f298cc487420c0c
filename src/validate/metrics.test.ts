import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { ValidationMetrics } from './metrics.ts';

describe('ValidationMetrics', () => {
  it('counts in the registry and in process, with reason labels', async () => {
    const registry = new Registry();
    const m = new ValidationMetrics(registry);
    m.drop('#commit', 'bad-signature');
    m.drop('#commit', 'bad-signature');
    m.pass('#commit');
    m.chainFailure('prev-data', false);
    m.resync(true);
    m.identityLookup(true);
    const text = await registry.metrics();
    assert.match(text, /relay_validation_dropped_total\{type="#commit",reason="bad-signature"\} 2/);
    assert.match(text, /relay_validation_passed_total\{type="#commit"\} 1/);
    assert.match(text, /relay_validation_sync_chain_failures_total\{check="prev-data",mode="strict"\} 1/);
    assert.match(text, /relay_validation_resyncs_total\{result="ok"\} 1/);
    assert.match(text, /relay_validation_identity_lookups_total\{result="hit"\} 1/);
    assert.equal(m.droppedCount('bad-signature'), 2);
  });
});
