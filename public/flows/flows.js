// The flow page: logs in (or reuses the CCP's login on this origin), lists
// the flows from `GET /v1/flows`, draws the chosen one with the layout of
// flow-graph.mjs, and with `?contact=<id>` (or the contact field) marks the
// path that contact took from its record's `flow_log`. Read-only: it sends
// nothing but the login and GETs. Data flows one way: every change goes
// through `update(...)`, which re-renders from `state`.
import { layoutFlow, firstFlowOf } from './flow-graph.mjs';

const SVG = 'http://www.w3.org/2000/svg';
/** The page's own login (this tab only), then the CCP's (shared). */
const PAGE_TOKEN = 'switchboard.flows.token';
const CCP_TOKEN = 'switchboard.token';
const LANG = 'switchboard.lang';

const TEXT = {
  en: {
    title: 'Contact flows', language: 'Language', logout: 'Log out', loginTitle: 'Log in',
    loginHint: 'Log in with your agent account. Every flow and any contact\'s path are shown to supervisors; other agents see the contacts they took part in.',
    username: 'User name', password: 'Password', loginButton: 'Log in', flow: 'Flow',
    contact: 'Contact id', showPath: 'Show path', graph: 'Flow graph', block: 'Block',
    path: 'Contact\'s path',
    legend: 'Tab through the blocks; the details of the focused block appear beside the graph. Blocks and arrows the contact took are outlined and numbered in order.',
    loading: 'Loading…', loggedInAs: (a) => `Logged in as ${a}`,
    loginFailed: 'Login failed: wrong user name or password, or too many attempts.',
    noFlows: 'No flows are configured.', forbidden: 'This login cannot see the flows (supervisors only). Log in as a supervisor.',
    expired: 'Your login has expired. Please log in again.', unreachable: 'The backend cannot be reached.',
    contactMissing: (id) => `Contact ${id} was not found, or this login may not see it.`,
    contactShown: (id, n) => `Contact ${id}: ${n} steps.`, noLog: (id) => `Contact ${id} has no flow log.`,
    pickBlock: 'Focus or click a block to see its details.', start: 'start', steps: 'Steps',
    branches: 'Branches', type: 'Type', none: 'none', inputs: 'Inputs', outputs: 'Outputs',
    inFlow: (f) => `in flow ${f}`, error: 'Error', stepsOf: (s) => `steps ${s}`,
    blockAria: (b) => `Block ${b.id}, ${b.type}${b.label ? `: ${b.label}` : ''}`,
    taken: 'taken', failed: 'failed', fit: 'Fit to width',
  },
  ja: {
    title: 'コンタクトフロー', language: '言語', logout: 'ログアウト', loginTitle: 'ログイン',
    loginHint: 'エージェントのアカウントでログインしてください。すべてのフローと任意のコンタクトの経路はスーパーバイザーに表示されます。',
    username: 'ユーザー名', password: 'パスワード', loginButton: 'ログイン', flow: 'フロー',
    contact: 'コンタクトID', showPath: '経路を表示', graph: 'フロー図', block: 'ブロック',
    path: 'コンタクトの経路',
    legend: 'Tabキーでブロックを移動すると、詳細が右に表示されます。コンタクトが通ったブロックと矢印は強調され、順番に番号が付きます。',
    loading: '読み込み中…', loggedInAs: (a) => `${a} でログイン中`,
    loginFailed: 'ログインに失敗しました。ユーザー名かパスワードが違うか、試行回数が多すぎます。',
    noFlows: 'フローが設定されていません。', forbidden: 'このアカウントではフローを表示できません（スーパーバイザーのみ）。',
    expired: 'ログインの有効期限が切れました。もう一度ログインしてください。', unreachable: 'バックエンドに接続できません。',
    contactMissing: (id) => `コンタクト ${id} が見つからないか、表示する権限がありません。`,
    contactShown: (id, n) => `コンタクト ${id}：${n} ステップ`, noLog: (id) => `コンタクト ${id} にはフローログがありません。`,
    pickBlock: 'ブロックを選ぶと詳細が表示されます。', start: '開始', steps: 'ステップ',
    branches: '分岐', type: '種類', none: 'なし', inputs: '入力', outputs: '出力',
    inFlow: (f) => `フロー ${f}`, error: 'エラー', stepsOf: (s) => `ステップ ${s}`,
    blockAria: (b) => `ブロック ${b.id}、${b.type}${b.label ? `：${b.label}` : ''}`,
    taken: '通過', failed: '失敗', fit: '幅に合わせる',
  },
};

const state = {
  lang: 'en',
  token: null,
  agent: '',
  flows: [],
  flowId: null,
  contactId: null,
  log: [],
  focused: null,
};

const $ = (id) => document.getElementById(id);
const t = (key, ...args) => {
  const v = TEXT[state.lang][key] ?? TEXT.en[key];
  return typeof v === 'function' ? v(...args) : v;
};

function storage(kind) {
  try { return kind === 'session' ? window.sessionStorage : window.localStorage; } catch { return null; }
}

function setStatus(text, isError = false) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', isError);
}

/** A GET with the bearer token; throws { status } on a non-2xx answer. */
async function getJson(path) {
  let res;
  try {
    res = await fetch(path, { headers: { authorization: `Bearer ${state.token}` }, cache: 'no-store' });
  } catch {
    throw { status: 0 };
  }
  if (!res.ok) throw { status: res.status };
  return res.json();
}

async function login(username, password) {
  let res;
  try {
    res = await fetch('/v1/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
  } catch {
    throw new Error(t('unreachable'));
  }
  if (!res.ok) throw new Error(t('loginFailed'));
  const body = await res.json();
  state.token = body.token;
  state.agent = body.agent ?? username;
  storage('session')?.setItem(PAGE_TOKEN, body.token);
}

function showLogin(message = '') {
  $('viewer').hidden = true;
  $('login').hidden = false;
  $('logout').hidden = true;
  $('who').textContent = '';
  $('login-error').textContent = message;
  $('login-username').focus();
}

/** Loads the flows (and the contact, if any) with the current token. */
async function load() {
  setStatus(t('loading'));
  let list;
  try {
    list = await getJson('/v1/flows');
  } catch (e) {
    setStatus('');
    if (e.status === 401) {
      storage('session')?.removeItem(PAGE_TOKEN);
      return showLogin(state.token ? t('expired') : '');
    }
    if (e.status === 403 || e.status === 404) return showLogin(t('forbidden'));
    return setStatus(t('unreachable'), true);
  }
  state.flows = Array.isArray(list?.flows) ? list.flows : [];
  $('login').hidden = true;
  $('viewer').hidden = false;
  $('logout').hidden = false;
  $('who').textContent = state.agent ? t('loggedInAs', state.agent) : '';
  const params = new URLSearchParams(location.search);
  const wanted = params.get('flow');
  state.flowId = state.flows.some((f) => f.id === wanted) ? wanted : state.flows[0]?.id ?? null;
  const contact = params.get('contact');
  if (contact) await loadContact(contact, !wanted);
  else {
    setStatus(state.flows.length ? '' : t('noFlows'));
    render();
  }
}

async function loadContact(id, followLog = true) {
  state.contactId = id;
  $('contact-input').value = id;
  setStatus(t('loading'));
  try {
    const record = await getJson(`/v1/contacts/${encodeURIComponent(id)}`);
    state.log = Array.isArray(record?.flow_log) ? record.flow_log : [];
    const first = firstFlowOf(state.log);
    if (followLog && first && state.flows.some((f) => f.id === first)) state.flowId = first;
    setStatus(state.log.length ? t('contactShown', id, state.log.length) : t('noLog', id));
  } catch (e) {
    state.log = [];
    if (e.status === 401) return showLogin(t('expired'));
    setStatus(e.status === 0 ? t('unreachable') : t('contactMissing', id), true);
  }
  render();
}

// --- Rendering --------------------------------------------------------------

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Clips text to about `width` pixels (wide characters count double). */
function clip(text, width, px = 6.6) {
  let used = 0, out = '';
  for (const ch of text) {
    const w = ch.charCodeAt(0) > 0x2e80 ? px * 1.9 : px;
    if (used + w > width) return out + '…';
    used += w;
    out += ch;
  }
  return out;
}

function render() {
  applyLanguage();
  const select = $('flow-select');
  select.replaceChildren(...state.flows.map((f) => {
    const o = document.createElement('option');
    o.value = f.id;
    o.textContent = `${f.name} (${f.id}, ${f.type})`;
    o.selected = f.id === state.flowId;
    return o;
  }));
  const flow = state.flows.find((f) => f.id === state.flowId);
  const svg = $('graph');
  svg.replaceChildren();
  if (!flow) {
    renderSteps(null);
    return;
  }
  const model = layoutFlow(flow, state.log);
  svg.setAttribute('viewBox', `0 0 ${model.width} ${model.height}`);
  svg.setAttribute('width', model.width);
  svg.setAttribute('height', model.height);
  svg.dataset.flow = model.id;
  const defs = el('defs');
  for (const [id, cls] of [['arrow', 'arrowhead'], ['arrow-taken', 'arrowhead taken']]) {
    const marker = el('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    marker.append(el('path', { d: 'M0,0 L10,5 L0,10 z', class: cls }));
    defs.append(marker);
  }
  svg.append(defs);

  const edges = el('g', { class: 'edges' });
  // Taken arrows last, so they are drawn over the others.
  for (const e of [...model.edges].sort((a, b) => Number(a.taken) - Number(b.taken))) {
    const g = el('g', { class: `edge ${e.kind}${e.taken ? ' taken' : ''}`, 'data-testid': `edge-${e.from}-${e.name}`, 'data-taken': e.taken });
    g.append(el('path', { d: e.path, class: 'edge-line', 'marker-end': `url(#${e.taken ? 'arrow-taken' : 'arrow'})` }));
    // Step numbers first: a long branch name is clipped, never the path.
    const text = e.steps.length ? `#${e.steps.join(',')} ${e.name}` : e.name;
    const shown = clip(text, 110, 6.2);
    const w = Math.min(116, [...shown].reduce((s, ch) => s + (ch.charCodeAt(0) > 0x2e80 ? 11.5 : 6.2), 0) + 6);
    g.append(el('rect', { x: e.label.x - 3, y: e.label.y - 11, width: w, height: 14, rx: 3, class: 'edge-label-bg' }));
    g.append(el('text', { x: e.label.x, y: e.label.y, class: 'edge-label' }, shown));
    edges.append(g);
  }

  const nodes = el('g', { class: 'nodes' });
  for (const n of model.nodes) {
    const visits = n.visits.length ? ` (${t('stepsOf', n.visits.join(', '))})` : '';
    const g = el('g', {
      class: `node state-${n.state}${n.start ? ' start' : ''}`,
      tabindex: 0,
      role: 'button',
      'data-testid': `node-${n.id}`,
      'data-block': n.id,
      'data-state': n.state,
      'aria-label': t('blockAria', n) + (n.start ? ` (${t('start')})` : '') + visits,
    });
    g.append(el('rect', { x: n.x, y: n.y, width: n.w, height: n.h, rx: 6, class: 'node-box' }));
    g.append(el('text', { x: n.x + 10, y: n.y + 18, class: 'node-id' }, clip(n.id, n.w - 60, 7.4)));
    g.append(el('text', { x: n.x + 10, y: n.y + 33, class: 'node-type' }, clip(n.type, n.w - 20)));
    if (n.label) g.append(el('text', { x: n.x + 10, y: n.y + 48, class: 'node-label' }, clip(n.label, n.w - 20)));
    if (n.visits.length) {
      const badge = n.visits.join(',');
      const bw = Math.max(20, badge.length * 7 + 10);
      g.append(el('rect', { x: n.x + n.w - bw - 4, y: n.y + 4, width: bw, height: 17, rx: 8, class: 'badge' }));
      g.append(el('text', { x: n.x + n.w - bw / 2 - 4, y: n.y + 16, class: 'badge-text', 'text-anchor': 'middle' }, clip(badge, bw)));
    }
    g.append(el('title', {}, `${n.id} · ${n.type}${n.label ? ` · ${n.label}` : ''}`));
    g.addEventListener('focus', () => showDetails(flow, model, n.id));
    g.addEventListener('click', () => g.focus());
    nodes.append(g);
  }
  svg.append(edges, nodes);
  renderSteps(model);
  showDetails(flow, model, state.focused && model.nodes.some((n) => n.id === state.focused) ? state.focused : null);
}

function renderSteps(model) {
  const list = $('steps');
  const errors = $('path-errors');
  if (!model) {
    list.replaceChildren();
    errors.replaceChildren();
    return;
  }
  errors.replaceChildren(...model.errors.map((text) => {
    const li = document.createElement('li');
    li.textContent = text;
    return li;
  }));
  list.replaceChildren(...model.steps.map((s) => {
    const li = document.createElement('li');
    li.value = s.n;
    li.dataset.testid = `step-${s.n}`;
    if (s.error) li.classList.add('error');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'step';
    const where = s.inFlow ? '' : ` · ${t('inFlow', s.flow)}`;
    button.textContent = `${s.n}. ${s.block || '?'} (${s.type || '?'})${s.branch ? ` → ${s.branch}` : ''}${where}`;
    button.addEventListener('click', () => {
      if (!s.inFlow && state.flows.some((f) => f.id === s.flow)) {
        state.flowId = s.flow;
        state.focused = s.block;
        render();
      }
      document.querySelector(`[data-block="${CSS.escape(s.block)}"]`)?.focus();
    });
    li.append(button);
    if (s.error) {
      const p = document.createElement('p');
      p.className = 'step-error';
      p.textContent = `${t('error')}: ${s.error}`;
      li.append(p);
    }
    return li;
  }));
}

function showDetails(flow, model, blockId) {
  state.focused = blockId;
  const box = $('details');
  const block = flow.blocks.find((b) => b.id === blockId);
  const node = model.nodes.find((n) => n.id === blockId);
  if (!block || !node) {
    const p = document.createElement('p');
    p.textContent = t('pickBlock');
    box.replaceChildren(p);
    return;
  }
  const dl = document.createElement('dl');
  const row = (term, value) => {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    if (value instanceof Node) dd.append(value); else dd.textContent = value;
    dl.append(dt, dd);
  };
  const h = document.createElement('h3');
  h.textContent = block.id;
  row(t('type'), block.type);
  if (block.label) row('', block.label);
  const ul = document.createElement('ul');
  for (const br of block.branches ?? []) {
    const li = document.createElement('li');
    const edge = model.edges.find((e) => e.from === block.id && e.name === br.name);
    li.textContent = `${br.name} → ${br.to}${edge?.taken ? ` (${t('taken')} ${edge.steps.join(', ')})` : ''}`;
    ul.append(li);
  }
  row(t('branches'), ul.childElementCount ? ul : t('none'));
  row(t('steps'), node.visits.length ? node.visits.join(', ') : t('none'));
  for (const s of model.steps.filter((x) => x.inFlow && x.block === block.id)) {
    const pre = document.createElement('pre');
    pre.textContent = JSON.stringify({ inputs: s.inputs, outputs: s.outputs, ...(s.error ? { error: s.error } : {}) }, null, 1);
    row(`#${s.n}${s.error ? ` (${t('failed')})` : ''}`, pre);
  }
  box.replaceChildren(h, dl);
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  for (const node of document.querySelectorAll('[data-i18n]')) {
    node.textContent = t(node.dataset.i18n);
  }
  document.title = `${t('title')} · Switchboard`;
  $('lang').value = state.lang;
  if (state.agent && !$('viewer').hidden) $('who').textContent = t('loggedInAs', state.agent);
}

// --- Wiring -------------------------------------------------------------------

function init() {
  const saved = storage('local')?.getItem(LANG);
  state.lang = saved === 'ja' || (!saved && navigator.language?.startsWith('ja')) ? 'ja' : 'en';
  const theme = storage('local')?.getItem('switchboard.theme');
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  applyLanguage();

  $('lang').addEventListener('change', (e) => {
    state.lang = e.target.value === 'ja' ? 'ja' : 'en';
    storage('local')?.setItem(LANG, state.lang);
    render();
  });
  $('fit').addEventListener('change', (e) => {
    $('graph-wrap').classList.toggle('fit', e.target.checked);
  });
  $('flow-select').addEventListener('change', (e) => {
    state.flowId = e.target.value;
    state.focused = null;
    render();
  });
  $('contact-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = $('contact-input').value.trim();
    if (!id) return;
    const url = new URL(location.href);
    url.searchParams.set('contact', id);
    url.searchParams.delete('flow');
    history.replaceState(null, '', url);
    loadContact(id);
  });
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('login-error').textContent = '';
    try {
      await login($('login-username').value.trim(), $('login-password').value);
      $('login-password').value = '';
      await load();
    } catch (err) {
      $('login-error').textContent = err.message;
    }
  });
  $('logout').addEventListener('click', () => {
    // Forgets this page's login only; the CCP's (if reused) stays its own.
    storage('session')?.removeItem(PAGE_TOKEN);
    state.token = null;
    state.agent = '';
    showLogin();
  });

  state.token = storage('session')?.getItem(PAGE_TOKEN) || storage('local')?.getItem(CCP_TOKEN) || null;
  if (state.token) load();
  else showLogin();
}

init();
