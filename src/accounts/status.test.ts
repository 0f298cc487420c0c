import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  effectiveStatus,
  indexStatusOf,
  isActive,
  publishedStatus,
  statusOfPublished,
  upstreamStatusOf,
} from './status.ts';

describe('account status rules', () => {
  it('maps #account events to upstream statuses', () => {
    assert.equal(upstreamStatusOf(true, undefined), 'active');
    assert.equal(upstreamStatusOf(true, 'takendown'), 'active');
    assert.equal(upstreamStatusOf(false, 'takendown'), 'takendown');
    assert.equal(upstreamStatusOf(false, 'deleted'), 'deleted');
    assert.equal(upstreamStatusOf(false, undefined), 'deactivated');
    assert.equal(upstreamStatusOf(false, 'some-future-status'), 'deactivated');
  });

  it('publishes the local status first, then the upstream one', () => {
    assert.deepEqual(publishedStatus({ status: 'active', upstreamStatus: 'active' }), { active: true });
    assert.deepEqual(publishedStatus({ status: 'takendown', upstreamStatus: 'active' }), {
      active: false,
      status: 'takendown',
    });
    assert.deepEqual(publishedStatus({ status: 'active', upstreamStatus: 'deactivated' }), {
      active: false,
      status: 'deactivated',
    });
    assert.deepEqual(publishedStatus({ status: 'throttled', upstreamStatus: 'deleted' }), {
      active: false,
      status: 'throttled',
    });
    assert.equal(isActive({ status: 'active', upstreamStatus: 'suspended' }), false);
  });

  it('names one effective status, and the collection index cut', () => {
    assert.equal(effectiveStatus({ status: 'takendown', upstreamStatus: 'deleted' }), 'takendown');
    assert.equal(effectiveStatus({ status: 'active', upstreamStatus: 'suspended' }), 'suspended');
    assert.equal(statusOfPublished({ active: true }), 'active');
    assert.equal(statusOfPublished({ active: false, status: 'deleted' }), 'deleted');
    assert.equal(statusOfPublished({ active: false }), 'deactivated');
    assert.equal(indexStatusOf({ status: 'desynchronized', upstreamStatus: 'active' }), 'active');
    assert.equal(indexStatusOf({ status: 'throttled', upstreamStatus: 'active' }), 'active');
    assert.equal(indexStatusOf({ status: 'takendown', upstreamStatus: 'deleted' }), 'takendown');
    assert.equal(indexStatusOf({ status: 'active', upstreamStatus: 'deleted' }), 'deleted');
  });
});
