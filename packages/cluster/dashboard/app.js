// tsray dashboard: one page, hash-routed (#overview, #nodes, #jobs[/<id>], #actors, #tasks,
// #placement_groups, #engines). It reads /dashboard/api/* (the cookie set by /dashboard?token=… authenticates)
// and re-renders the current page on every `change` event of the server-sent event stream.
// Data goes into the page through textContent only, never as HTML.

const PAGE_SIZE = 50;
const main = document.getElementById('main');
const live = document.getElementById('live');
/** Offset of each paginated list. */
const offsets = {};
let rendering = false;
let again = false;
let logTimer;

/** Element helper: tag, attributes, children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'onclick') e.addEventListener('click', v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat(Number.POSITIVE_INFINITY)) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(path) {
  const res = await fetch(`api/${path}`, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  return res.json();
}

function fmtNum(n) {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function fmtRes(key, n) {
  if (key === 'memory' || key === 'object_store_memory') return `${(n / 2 ** 30).toFixed(2)} GiB`;
  return fmtNum(n);
}

function short(id) {
  return id ? String(id).slice(0, 12) : '';
}

/** GPU ids as a list: "[0, 1]", or "—" for none. */
function gpuList(ids) {
  return ids?.length ? `[${ids.join(', ')}]` : '—';
}

/** Milliseconds with a unit, or "—" while unknown. */
function fmtMs(ms) {
  return ms === null || ms === undefined ? '—' : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
}

function table(headers, rows, cls = '') {
  return h(
    'table',
    { class: cls },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((x) => h('th', {}, x)),
      ),
    ),
    h('tbody', {}, rows),
  );
}

function stateCell(s) {
  return h('td', { class: `state-${s}` }, s);
}

function card(k, v, frac) {
  const c = h('div', { class: 'card' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v));
  if (frac !== undefined) {
    // Set through the CSSOM: the page's CSP forbids inline style attributes.
    const fill = h('div', { class: 'fill' });
    fill.style.width = `${Math.round(Math.min(1, frac) * 100)}%`;
    c.append(h('div', { class: 'bar', 'data-used': frac.toFixed(3) }, fill));
  }
  return c;
}

function counts(title, obj) {
  return [
    h('h2', {}, title),
    h(
      'div',
      { class: 'cards', 'data-counts': title },
      Object.entries(obj).map(([k, v]) => card(k, String(v))),
    ),
  ];
}

/**
 * A page of a list with Prev/Next and "a–b of N". The main list of a page has the ids prev, next and
 * pager-info; a second list on the same page (the tasks page's failures) prefixes them with `ids`.
 */
async function paged(name, render, ids = '') {
  const offset = offsets[name] ?? 0;
  const p = await api(`${name}?offset=${offset}&limit=${PAGE_SIZE}`);
  const go = (o) => () => {
    offsets[name] = o;
    void refresh();
  };
  const first = p.total === 0 ? 0 : p.offset + 1;
  const pager = h(
    'div',
    { class: 'pager' },
    h('button', { id: `${ids}prev`, onclick: go(Math.max(0, offset - PAGE_SIZE)) }, 'Prev'),
    h('span', { id: `${ids}pager-info`, 'data-total': p.total, 'data-rows': p.items.length }, `${first}–${p.offset + p.items.length} of ${p.total}`),
    h('button', { id: `${ids}next`, onclick: go(offset + PAGE_SIZE < p.total ? offset + PAGE_SIZE : offset) }, 'Next'),
  );
  return [pager, render(p)];
}

const pages = {
  async overview() {
    const o = await api('overview');
    const res = ['CPU', 'GPU', 'memory', 'object_store_memory'].filter((k) => o.resources[k]);
    const custom = Object.keys(o.resources).filter((k) => !res.includes(k) && !k.startsWith('node:'));
    return [
      h('h2', {}, 'Cluster'),
      h(
        'div',
        { class: 'cards' },
        card('nodes alive', String(o.nodes.alive)),
        card('nodes dead', String(o.nodes.dead)),
        [...res, ...custom].map((k) => {
          const r = o.resources[k];
          return card(`${k} used / total`, `${fmtRes(k, r.used)} / ${fmtRes(k, r.total)}`, r.total ? r.used / r.total : 0);
        }),
        card('infeasible', String(o.infeasible)),
      ),
      counts('Tasks', o.tasks),
      counts('Actors', o.actors),
      counts('Jobs', o.jobs),
      counts('Placement groups', o.placementGroups),
      h('h2', {}, 'Pending demand'),
      table(
        ['kind', 'name', 'count', 'infeasible', 'missing'],
        o.pendingDemand.map((d) =>
          h(
            'tr',
            {},
            h('td', {}, d.kind),
            h('td', {}, d.name),
            h('td', {}, d.count),
            h('td', {}, d.infeasible ? 'yes' : 'no'),
            h('td', {}, d.missing.join(', ')),
          ),
        ),
        'demand',
      ),
    ];
  },
  async nodes() {
    return paged('nodes', (p) =>
      table(
        ['node', 'role', 'state', 'address', 'host', 'pid', 'CPU used/total', 'GPU used/total', 'GPU ids in use', 'memory', 'object store', 'labels'],
        p.items.map((n) => {
          const used = (k) =>
            n.resourcesTotal[k] === undefined ? '—' : `${fmtRes(k, n.resourcesTotal[k] - (n.resourcesAvailable[k] ?? 0))} / ${fmtRes(k, n.resourcesTotal[k])}`;
          return h(
            'tr',
            {},
            h('td', { title: n.nodeId }, short(n.nodeId)),
            h('td', {}, n.isHead ? 'head' : 'worker'),
            stateCell(n.alive ? 'ALIVE' : 'DEAD'),
            h('td', {}, n.address),
            h('td', {}, n.hostname),
            h('td', {}, n.pid),
            h('td', {}, used('CPU')),
            h('td', {}, used('GPU')),
            h(
              'td',
              { class: 'gpus' },
              (n.gpusInUse ?? []).length === 0
                ? '—'
                : n.gpusInUse.map((g) => h('div', {}, `GPU ${g.gpuId} → pid ${g.pid}${g.actorId ? ` (actor ${short(g.actorId)})` : ''}`)),
            ),
            h('td', {}, used('memory')),
            h('td', {}, used('object_store_memory')),
            h(
              'td',
              {},
              Object.entries(n.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(', '),
            ),
          );
        }),
      ),
    );
  },
  async jobs(arg) {
    const list = await paged('jobs', (p) =>
      table(
        ['submission id', 'status', 'entrypoint', 'message', 'started', 'exit code'],
        p.items.map((j) =>
          h(
            'tr',
            {},
            h('td', {}, h('a', { href: `#jobs/${encodeURIComponent(j.submission_id)}` }, j.submission_id)),
            stateCell(j.status),
            h('td', {}, j.entrypoint),
            h('td', {}, j.message),
            h('td', {}, j.start_time ? new Date(j.start_time).toISOString() : ''),
            h('td', {}, j.driver_exit_code ?? ''),
          ),
        ),
      ),
    );
    if (!arg) return list;
    const pre = h('pre', { class: 'logs', id: 'job-logs' }, (await api(`jobs/${encodeURIComponent(arg)}/logs`)).logs);
    // The log grows without the cluster state changing, so the open log is re-read every second.
    logTimer = setInterval(async () => {
      try {
        pre.textContent = (await api(`jobs/${encodeURIComponent(arg)}/logs`)).logs;
      } catch {
        /* the job was deleted; the next change event re-renders */
      }
    }, 1000);
    return [list, h('h2', {}, `Logs of ${arg}`), pre];
  },
  async actors() {
    return paged('actors', (p) =>
      table(
        ['actor', 'class', 'name', 'state', 'restarts', 'pid', 'node', 'GPU ids', 'death cause'],
        p.items.map((a) =>
          h(
            'tr',
            {},
            h('td', { title: a.actorId }, short(a.actorId)),
            h('td', {}, a.className),
            h('td', {}, a.name),
            stateCell(a.state),
            h('td', {}, a.numRestarts),
            h('td', {}, a.pid || ''),
            h('td', { title: a.nodeId }, short(a.nodeId)),
            h('td', {}, gpuList(a.gpuIds)),
            h('td', { class: 'cause' }, a.deathCause ?? ''),
          ),
        ),
      ),
    );
  },
  async tasks() {
    let c = {};
    const list = await paged('tasks', (p) => {
      c = p.counts ?? {};
      return table(
        ['task', 'name', 'state', 'node', 'actor', 'pid', 'duration (ms)'],
        p.items.map((t) =>
          h(
            'tr',
            {},
            h('td', { title: t.taskId }, short(t.taskId)),
            h('td', {}, t.name),
            stateCell(t.state),
            h('td', { title: t.nodeId }, short(t.nodeId)),
            h('td', {}, short(t.actorId)),
            h('td', {}, t.pid ?? ''),
            h('td', {}, t.durationMs === undefined ? '' : fmtNum(t.durationMs)),
          ),
        ),
        'tasks',
      );
    });
    return [counts('Tasks by state', c), list, h('h2', {}, 'Recent failures'), await paged('failures', failureTable, 'failures-')];
  },
  async placement_groups() {
    return paged('placement_groups', (p) =>
      table(
        ['placement group', 'name', 'strategy', 'state', 'bundle → node → GPU ids'],
        p.items.map((g) =>
          h(
            'tr',
            {},
            h('td', { title: g.placementGroupId }, short(g.placementGroupId)),
            h('td', {}, g.name),
            h('td', {}, g.strategy),
            stateCell(g.state),
            h(
              'td',
              {},
              g.bundles.map((b, i) =>
                h(
                  'div',
                  {},
                  `#${i} ${Object.entries(b)
                    .map(([k, v]) => `${k}:${fmtNum(v)}`)
                    .join(' ')} → ${short(g.bundleNodes[i]) || 'unplaced'} → GPU ${gpuList(g.bundleGpuIds?.[i])}`,
                ),
              ),
            ),
          ),
        ),
      ),
    );
  },
};

/** The failures table of the tasks page: error class, message and the remote stack (folded). */
function failureTable(p) {
  return table(
    ['time', 'task', 'name', 'node', 'pid', 'error', 'message and remote stack'],
    p.items.map((f) =>
      h(
        'tr',
        { class: 'failure' },
        h('td', {}, new Date(f.time).toISOString().slice(11, 23)),
        h('td', { title: f.taskId }, short(f.taskId)),
        h('td', {}, f.name),
        h('td', { title: f.nodeId }, short(f.nodeId)),
        h('td', {}, f.pid || ''),
        h('td', { class: 'state-FAILED' }, f.errorName),
        h(
          'td',
          { class: 'cause' },
          h('div', {}, f.message),
          f.stack ? h('details', { open: '' }, h('summary', {}, 'remote stack'), h('pre', { class: 'stack' }, f.stack)) : '',
        ),
      ),
    ),
    'failures',
  );
}

pages.engines = async () =>
  paged('engines', (p) =>
    table(
      ['engine', 'rank', 'model', 'backend', 'node', 'pid', 'GPU ids', 'TP', 'running', 'waiting', 'tokens/s', 'TTFT p50', 'TTFT p99', 'KV cache', 'requests'],
      p.items.map((e) => {
        const kv = h('div', { class: 'bar', 'data-used': e.kvCacheUsage.toFixed(3) }, h('div', { class: 'fill' }));
        kv.firstChild.style.width = `${Math.round(Math.min(1, e.kvCacheUsage) * 100)}%`;
        return h(
          'tr',
          { 'data-engine': e.actorId },
          h('td', { title: e.actorId }, e.name || short(e.actorId)),
          h('td', {}, e.rank),
          h('td', { title: e.model }, e.model.split('/').pop()),
          h('td', {}, e.backend),
          h('td', { title: e.nodeId }, short(e.nodeId)),
          h('td', {}, e.pid),
          h('td', {}, gpuList(e.gpuIds)),
          h('td', {}, e.tensorParallelSize),
          h('td', { class: 'running' }, e.running),
          h('td', { class: 'waiting' }, e.waiting),
          h('td', { class: 'tps' }, fmtNum(e.tokensPerS)),
          h('td', { class: 'ttft50' }, fmtMs(e.ttftP50Ms)),
          h('td', { class: 'ttft99' }, fmtMs(e.ttftP99Ms)),
          h('td', { class: 'kv' }, `${(e.kvCacheUsage * 100).toFixed(1)}%`, kv),
          h('td', { class: 'requests' }, e.requestsFinished),
        );
      }),
      'engines',
    ),
  );

function route() {
  const [name, arg] = (location.hash.slice(1) || 'overview').split('/');
  return { name: pages[name] ? name : 'overview', arg: arg ? decodeURIComponent(arg) : undefined };
}

/** Render the current page (a render asked for while one runs is done right after it). */
async function refresh() {
  if (rendering) {
    again = true;
    return;
  }
  rendering = true;
  try {
    const { name, arg } = route();
    clearInterval(logTimer);
    let content;
    try {
      content = await pages[name](arg);
    } catch (e) {
      content = h('p', { class: 'error' }, String(e.message ?? e));
    }
    main.replaceChildren(h('h2', {}, name.replace('_', ' ')), ...[content].flat(Number.POSITIVE_INFINITY));
    main.dataset.page = name;
    main.dataset.updates = String(Number(main.dataset.updates) + 1);
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.nav === name);
  } finally {
    rendering = false;
    if (again) {
      again = false;
      void refresh();
    }
  }
}

window.addEventListener('hashchange', () => void refresh());
const events = new EventSource('api/events');
events.addEventListener('open', () => {
  live.textContent = 'live';
  live.classList.add('on');
});
events.addEventListener('error', () => {
  live.textContent = 'reconnecting…';
  live.classList.remove('on');
});
events.addEventListener('change', () => void refresh());
void refresh();
