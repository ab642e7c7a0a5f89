// The flow page's graph layout (public/flows/flow-graph.mjs), from the
// contract's JSON shapes: `GET /v1/flows` (fixtures/flows/flows.json, the
// sample flows as the API lists them) and contact records with their
// `flow_log` (fixtures/flows/contact-*.json). Every block is drawn once,
// every branch is an arrow with its label, loops terminate, a contact's
// path is marked in order, and a log naming an unknown block is reported
// as an error rather than breaking the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { layoutFlow, firstFlowOf, NODE_W } from '../../public/flows/flow-graph.mjs';

const fixture = (name) =>
  JSON.parse(readFileSync(new URL(`./fixtures/flows/${name}`, import.meta.url), 'utf8'));
const { flows } = fixture('flows.json');
const flow = (id) => flows.find((f) => f.id === id);

const overlaps = (a, b) =>
  a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

for (const f of flows) {
  test(`${f.id}: every block drawn once, inside the picture, none overlapping`, () => {
    const model = layoutFlow(f);
    const ids = model.nodes.map((n) => n.id).sort();
    assert.deepEqual(ids, f.blocks.map((b) => b.id).sort());
    for (const n of model.nodes) {
      assert.ok(n.x >= 0 && n.y >= 0, n.id);
      assert.ok(n.x + n.w <= model.width && n.y + n.h <= model.height, `${n.id} inside ${model.width}x${model.height}`);
      assert.equal(n.w, NODE_W);
    }
    for (let i = 0; i < model.nodes.length; i++) {
      for (let j = i + 1; j < model.nodes.length; j++) {
        assert.ok(!overlaps(model.nodes[i], model.nodes[j]), `${model.nodes[i].id} overlaps ${model.nodes[j].id}`);
      }
    }
    const start = model.nodes.filter((n) => n.start);
    assert.deepEqual(start.map((n) => n.id), [f.start]);
    assert.equal(start[0].col, 0);
  });

  test(`${f.id}: every branch is one arrow, labelled, from its block to its target`, () => {
    const model = layoutFlow(f);
    const expected = f.blocks.flatMap((b) => b.branches.map((br) => `${b.id}:${br.name}->${br.to}`)).sort();
    const drawn = model.edges.map((e) => `${e.from}:${e.name}->${e.to}`).sort();
    assert.deepEqual(drawn, expected);
    const byId = new Map(model.nodes.map((n) => [n.id, n]));
    for (const e of model.edges) {
      assert.equal(e.name.length > 0, true, `${e.id} has a label`);
      assert.match(e.path, /^M-?\d/, `${e.id} has a path`);
      assert.notEqual(e.kind, 'dangling', `${e.id} points at a block`);
      // The arrow ends on its target's box edge.
      const t = byId.get(e.to);
      const onBox = e.end.x >= t.x - 0.5 && e.end.x <= t.x + t.w + 0.5 && e.end.y >= t.y - 0.5 && e.end.y <= t.y + t.h + 0.5;
      assert.ok(onBox, `${e.id} ends at ${JSON.stringify(e.end)}, not on ${t.id}`);
      assert.ok(Number.isFinite(e.label.x) && Number.isFinite(e.label.y));
    }
  });
}

test('columns are distances from the start: forward arrows go right, loops go back', () => {
  const model = layoutFlow(flow('order-support'));
  const col = new Map(model.nodes.map((n) => [n.id, n.col]));
  assert.equal(col.get('greeting_voice'), 0);
  assert.equal(col.get('greeting'), 1);
  assert.equal(col.get('choice_voice'), 2);
  // menu → 1 → date_attempts (loop) → ask_date ... bad_date → date_attempts.
  const back = model.edges.find((e) => e.from === 'bad_date' && e.to === 'date_attempts');
  assert.equal(back.kind, 'back');
  assert.ok(col.get('bad_date') > col.get('date_attempts'));
  const forward = model.edges.find((e) => e.from === 'menu' && e.name === '1');
  assert.equal(forward.kind, 'forward');
  assert.ok(col.get('date_attempts') > col.get('menu'));
});

test('a cycle, a self-loop and a block no branch reaches are laid out without recursion', () => {
  const cyclic = {
    id: 'c', name: 'cycle', type: 'customer_queue', start: 'a',
    blocks: [
      { id: 'a', type: 'loop', label: '3 times', branches: [{ name: 'looping', to: 'b' }, { name: 'complete', to: 'z' }] },
      { id: 'b', type: 'play_prompt', label: 'hi', branches: [{ name: 'next', to: 'c' }] },
      { id: 'c', type: 'play_prompt', label: 'music', branches: [{ name: 'next', to: 'a' }] },
      { id: 'z', type: 'check_attribute', label: 'x', branches: [{ name: 'present', to: 'z' }, { name: 'no_match', to: 'a' }] },
      { id: 'orphan', type: 'disconnect', label: '', branches: [] },
    ],
  };
  const model = layoutFlow(cyclic);
  assert.equal(model.nodes.length, 5);
  assert.equal(model.edges.length, 6);
  const kind = (from, to) => model.edges.find((e) => e.from === from && e.to === to).kind;
  assert.equal(kind('c', 'a'), 'back');
  assert.equal(kind('z', 'z'), 'self');
  assert.equal(kind('z', 'a'), 'back');
  const orphan = model.nodes.find((n) => n.id === 'orphan');
  assert.ok(orphan.col > Math.max(...model.nodes.filter((n) => n.id !== 'orphan').map((n) => n.col)));
  // Loops dip under the boxes and stay inside the picture.
  for (const e of model.edges) {
    const ys = [...e.path.matchAll(/-?\d+(?:\.\d+)?,(-?\d+(?:\.\d+)?)/g)].map((m) => Number(m[1]));
    assert.ok(Math.max(...ys) <= model.height, `${e.id} inside the picture`);
  }
});

test('a contact that changed the date: steps numbered in log order, loop passes counted', () => {
  const record = fixture('contact-change-date.json');
  assert.equal(firstFlowOf(record.flow_log), 'order-support');
  const model = layoutFlow(flow('order-support'), record.flow_log);
  assert.deepEqual(model.steps.map((s) => s.n), record.flow_log.map((_, i) => i + 1));
  assert.deepEqual(model.steps.map((s) => s.block), record.flow_log.map((e) => e.block));
  assert.deepEqual(model.errors, []);
  const node = (id) => model.nodes.find((n) => n.id === id);
  // The date was asked twice (a bad date, then a good one).
  assert.deepEqual(node('date_attempts').visits, [13, 18]);
  assert.deepEqual(node('ask_date').visits, [14, 19]);
  assert.equal(node('menu').state, 'taken');
  assert.equal(node('cancel').state, 'idle');
  assert.deepEqual(node('cancel').visits, []);
  const edge = (id) => model.edges.find((e) => e.id === id);
  assert.deepEqual(edge('menu:1').steps, [12]);
  assert.equal(edge('menu:1').taken, true);
  assert.equal(edge('menu:2').taken, false);
  assert.deepEqual(edge('date_checked:equals bad_date').steps, [16]);
  assert.deepEqual(edge('bad_date:next').steps, [17]);
  assert.deepEqual(edge('date_checked:equals ok').steps, [21]);
  // Taken arrows' steps ascend along the log: the path reads in order.
  const taken = model.edges.filter((e) => e.taken).flatMap((e) => e.steps).sort((a, b) => a - b);
  assert.deepEqual(taken, [...new Set(taken)]);
  // Every log entry but the last (disconnect, no branch) marks one arrow.
  assert.equal(taken.length, record.flow_log.length - 1);
});

test('a failed step and an unknown block are errors in the model, not exceptions', () => {
  const record = fixture('contact-lookup-error.json');
  const model = layoutFlow(flow('order-support'), record.flow_log);
  const lookup = model.nodes.find((n) => n.id === 'lookup');
  assert.equal(lookup.state, 'error');
  assert.deepEqual(model.edges.find((e) => e.id === 'lookup:error').steps, [10]);
  const ghost = model.steps.find((s) => s.block === 'ghost_block');
  assert.equal(ghost.known, false);
  assert.match(ghost.error, /unknown block "ghost_block"/);
  assert.ok(model.errors.some((e) => e.startsWith('step 12: unknown block')));
  assert.ok(model.errors.some((e) => e.includes('no answer within 3000 ms')));
  // Steps in the queue flow are kept (numbered) but not drawn here...
  const queued = model.steps.filter((s) => s.flow === 'order-queue');
  assert.deepEqual(queued.map((s) => [s.n, s.inFlow]), [[15, false], [16, false], [17, false]]);
  // ...and are drawn on the queue flow's own graph.
  const queue = layoutFlow(flow('order-queue'), record.flow_log);
  assert.deepEqual(queue.nodes.find((n) => n.id === 'passes_en').visits, [17]);
  assert.equal(queue.nodes.find((n) => n.id === 'music_en').state, 'idle');
});

test('malformed input: no blocks, a missing start, junk log entries, a dangling branch', () => {
  assert.deepEqual(layoutFlow({}).nodes, []);
  assert.deepEqual(layoutFlow(null, null).edges, []);
  const model = layoutFlow(
    { id: 'f', start: 'nowhere', blocks: [{ id: 'a', type: 'play_prompt', branches: [{ name: 'next', to: 'gone' }, null, { name: 5 }] }, { id: 'a' }, 7] },
    [null, 'text', { flow: 'f', block: 'a', branch: 'next' }, { flow: 'f', block: 'missing', branch: 'x', error: 'boom' }],
  );
  assert.deepEqual(model.nodes.map((n) => n.id), ['a']);
  assert.equal(model.edges.length, 1);
  assert.equal(model.edges[0].kind, 'dangling');
  assert.deepEqual(model.edges[0].steps, [3]);
  assert.equal(model.steps.length, 4);
  assert.equal(model.steps[0].error, 'not a flow log entry');
  assert.equal(model.steps[1].error, 'not a flow log entry');
  assert.match(model.steps[3].error, /unknown block "missing"; boom/);
  assert.equal(model.errors.length, 3);
});
