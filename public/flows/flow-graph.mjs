// The flow page's graph layout: a pure function from a flow (the JSON of
// `GET /v1/flows`, docs/flows.md) and optionally a contact's flow log (the
// `flow_log` of `GET /v1/contacts/{id}`) to an SVG model: boxes with their
// coordinates, arrows as path strings with their labels, and the numbered
// steps the contact took. No DOM here, so Node tests it
// (tests/js/flow-graph.test.mjs) and flows.js only turns the model into
// elements.
//
// The layout is layered: a block's column is its distance (in branches)
// from the start block, found breadth-first, so a loop back to an earlier
// block never recurses and never moves a block twice; blocks no branch
// reaches go in one last column. Within a column, blocks are ordered by the
// rows of the blocks that lead to them (one barycentre pass: fewer
// crossings). Forward arrows leave a block's right side, one port per
// branch; arrows back to an earlier column (loops) go round underneath.

/** Layout constants (pixels in the SVG's user space). */
export const NODE_W = 210;
export const NODE_MIN_H = 56;
export const PORT_GAP = 18;
export const COL_GAP = 120;
export const ROW_GAP = 36;
export const MARGIN = 24;
/** How far below the lowest of two blocks a loop arrow dips. */
export const LOOP_DIP = 28;

/** The branches of a block, tolerant of missing or malformed fields. */
function branchesOf(block) {
  const list = Array.isArray(block?.branches) ? block.branches : [];
  return list.filter((b) => b && typeof b.name === 'string' && typeof b.to === 'string');
}

const point = (x, y) => ({ x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10 });

/** A point on a cubic Bézier at t. */
function bezier(p0, p1, p2, p3, t) {
  const u = 1 - t;
  const a = u * u * u, b = 3 * u * u * t, c = 3 * u * t * t, d = t * t * t;
  return point(a * p0.x + b * p1.x + c * p2.x + d * p3.x, a * p0.y + b * p1.y + c * p2.y + d * p3.y);
}

const pathOf = (p0, p1, p2, p3) => `M${p0.x},${p0.y} C${p1.x},${p1.y} ${p2.x},${p2.y} ${p3.x},${p3.y}`;

/**
 * Lays out `flow` ({ id, name, type, start, blocks: [{ id, type, label,
 * branches: [{ name, to }] }] }) and marks the path of `log` (flow log
 * entries: { flow, block, type, branch, inputs, outputs, started_ms,
 * ended_ms, error? }) on it. Entries of other flows are kept as steps
 * (`inFlow: false`) but drawn nowhere; an entry naming a block this flow
 * does not have becomes a step with an error, never an exception.
 */
export function layoutFlow(flow, log = []) {
  const blocks = Array.isArray(flow?.blocks) ? flow.blocks : [];
  const byId = new Map();
  for (const b of blocks) {
    if (b && typeof b.id === 'string' && !byId.has(b.id)) byId.set(b.id, b);
  }

  // Columns: breadth-first distance from the start. Each block is visited
  // once, so cycles terminate.
  const col = new Map();
  const order = [];
  if (byId.has(flow?.start)) {
    col.set(flow.start, 0);
    order.push(flow.start);
  }
  for (let i = 0; i < order.length; i++) {
    const id = order[i];
    for (const br of branchesOf(byId.get(id))) {
      if (byId.has(br.to) && !col.has(br.to)) {
        col.set(br.to, col.get(id) + 1);
        order.push(br.to);
      }
    }
  }
  const reachedCols = order.length ? Math.max(...order.map((id) => col.get(id))) + 1 : 0;
  for (const id of byId.keys()) {
    if (!col.has(id)) {
      col.set(id, reachedCols);
      order.push(id);
    }
  }

  // Rows: discovery order, then one barycentre pass over the predecessors
  // in earlier columns (a stable sort keeps discovery order on ties).
  const columns = [];
  for (const id of order) (columns[col.get(id)] ??= []).push(id);
  const preds = new Map([...byId.keys()].map((id) => [id, []]));
  for (const [id, b] of byId) {
    for (const br of branchesOf(b)) if (byId.has(br.to)) preds.get(br.to).push(id);
  }
  const row = new Map();
  columns.forEach((ids, c) => {
    const key = new Map(ids.map((id, i) => {
      const earlier = preds.get(id).filter((p) => col.get(p) < c && row.has(p));
      const bary = earlier.length ? earlier.reduce((s, p) => s + row.get(p), 0) / earlier.length : i;
      return [id, bary];
    }));
    const sorted = ids.map((id, i) => ({ id, i })).sort((a, b) => key.get(a.id) - key.get(b.id) || a.i - b.i);
    sorted.forEach(({ id }, r) => row.set(id, r));
    columns[c] = sorted.map((s) => s.id);
  });

  // Boxes: tall enough for one port per branch.
  const nodes = [];
  const nodeById = new Map();
  let width = MARGIN, height = MARGIN;
  columns.forEach((ids, c) => {
    let y = MARGIN;
    const x = MARGIN + c * (NODE_W + COL_GAP);
    for (const id of ids) {
      const b = byId.get(id);
      const n = branchesOf(b).length;
      const h = Math.max(NODE_MIN_H, n * PORT_GAP + 20);
      const node = {
        id,
        type: typeof b.type === 'string' ? b.type : '',
        label: typeof b.label === 'string' ? b.label : '',
        x, y, w: NODE_W, h,
        col: c, row: row.get(id),
        start: id === flow.start,
        visits: [],
        state: 'idle',
      };
      nodes.push(node);
      nodeById.set(id, node);
      y += h + ROW_GAP;
      width = Math.max(width, x + NODE_W + MARGIN);
      height = Math.max(height, y - ROW_GAP + MARGIN);
    }
  });

  // Arrows.
  const edges = [];
  const edgeByKey = new Map();
  let loopBottom = height - MARGIN;
  let loopIndex = 0;
  for (const node of nodes) {
    const brs = branchesOf(byId.get(node.id));
    brs.forEach((br, i) => {
      const from = node;
      const to = nodeById.get(br.to);
      const sy = from.y + (from.h * (i + 1)) / (brs.length + 1);
      const edge = {
        id: `${node.id}:${br.name}`,
        from: node.id, to: br.to, name: br.name,
        kind: 'forward', path: '', label: point(0, 0), end: point(0, 0),
        steps: [], taken: false,
      };
      if (!to) {
        // A branch to a block the flow does not have (the server validates
        // flows, so this is a stale or hand-made document): a short stub.
        const p0 = point(from.x + from.w, sy);
        const p3 = point(from.x + from.w + 40, sy);
        edge.kind = 'dangling';
        edge.path = `M${p0.x},${p0.y} L${p3.x},${p3.y}`;
        edge.label = point(p0.x + 6, sy - 4);
        edge.end = p3;
      } else if (to.col > from.col) {
        const p0 = point(from.x + from.w, sy);
        const p3 = point(to.x, to.y + to.h / 2);
        const dx = (p3.x - p0.x) / 2;
        const p1 = point(p0.x + dx, p0.y);
        const p2 = point(p3.x - dx, p3.y);
        edge.path = pathOf(p0, p1, p2, p3);
        const l = bezier(p0, p1, p2, p3, 0.22);
        edge.label = point(l.x, l.y - 4);
        edge.end = p3;
      } else if (to === from) {
        // A block that leads to itself: a small loop on its lower right.
        const p0 = point(from.x + from.w, from.y + from.h - 10);
        const p3 = point(from.x + from.w - 24, from.y + from.h);
        const p1 = point(p0.x + 46, p0.y + 10);
        const p2 = point(p3.x + 10, p3.y + 46);
        edge.kind = 'self';
        edge.path = pathOf(p0, p1, p2, p3);
        edge.label = point(from.x + from.w + 14, from.y + from.h + 26);
        edge.end = p3;
        loopBottom = Math.max(loopBottom, from.y + from.h + 40);
      } else {
        // Back (or within a column): out of the source's right port, down
        // under both blocks, up into the target's bottom.
        const dip = Math.max(from.y + from.h, to.y + to.h) + LOOP_DIP + (loopIndex++ % 4) * 10;
        const p0 = point(from.x + from.w, sy);
        const p3 = point(to.x + to.w / 2, to.y + to.h);
        const p1 = point(p0.x + 60, dip + 20);
        const p2 = point(p3.x, dip + 20);
        edge.kind = 'back';
        edge.path = pathOf(p0, p1, p2, p3);
        const l = bezier(p0, p1, p2, p3, 0.5);
        edge.label = point(l.x, l.y + 4);
        edge.end = p3;
        loopBottom = Math.max(loopBottom, dip + 24);
      }
      edges.push(edge);
      if (!edgeByKey.has(edge.id)) edgeByKey.set(edge.id, edge);
    });
  }
  height = Math.max(height, loopBottom + MARGIN);
  width = Math.max(width, ...edges.map((e) => e.end.x + MARGIN + 40));

  // The contact's path, numbered from 1 in log order.
  const steps = [];
  const errors = [];
  const entries = Array.isArray(log) ? log : [];
  entries.forEach((entry, i) => {
    const n = i + 1;
    if (!entry || typeof entry !== 'object') {
      const step = { n, flow: '', block: '', type: '', branch: '', inFlow: false, known: false, error: 'not a flow log entry' };
      steps.push(step);
      errors.push(`step ${n}: ${step.error}`);
      return;
    }
    const str = (v) => (typeof v === 'string' ? v : v == null ? '' : String(v));
    const step = {
      n,
      flow: str(entry.flow),
      block: str(entry.block),
      type: str(entry.type),
      branch: str(entry.branch),
      inputs: entry.inputs && typeof entry.inputs === 'object' ? entry.inputs : {},
      outputs: entry.outputs && typeof entry.outputs === 'object' ? entry.outputs : {},
      started_ms: Number.isFinite(entry.started_ms) ? entry.started_ms : null,
      ended_ms: Number.isFinite(entry.ended_ms) ? entry.ended_ms : null,
      inFlow: str(entry.flow) === str(flow?.id),
      known: false,
      error: entry.error == null || entry.error === '' ? null : str(entry.error),
    };
    if (step.inFlow) {
      const node = nodeById.get(step.block);
      if (!node) {
        step.error = `unknown block "${step.block}"` + (step.error ? `; ${step.error}` : '');
      } else {
        step.known = true;
        node.visits.push(n);
        if (step.error) node.state = 'error';
        else if (node.state === 'idle') node.state = 'taken';
        const edge = edgeByKey.get(`${step.block}:${step.branch}`);
        if (edge) {
          edge.steps.push(n);
          edge.taken = true;
        }
      }
    }
    if (step.error) errors.push(`step ${n}: ${step.error}`);
    steps.push(step);
  });

  return {
    id: str0(flow?.id),
    name: str0(flow?.name),
    type: str0(flow?.type),
    start: str0(flow?.start),
    width: Math.ceil(width),
    height: Math.ceil(height),
    nodes,
    edges,
    steps,
    errors,
  };
}

const str0 = (v) => (typeof v === 'string' ? v : '');

/** The flow a contact's log starts in (the one to show first), if any. */
export function firstFlowOf(log) {
  const entry = Array.isArray(log) ? log.find((e) => e && typeof e.flow === 'string') : null;
  return entry ? entry.flow : null;
}
