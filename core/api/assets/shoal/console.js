// The staff console (docs/console.md): plain JavaScript, no build step, nothing fetched
// from the internet. Every figure comes from /graphql with the signed-in user's session
// (the same door as an API key: scopes and masking apply); text is set as text, never as
// HTML. Figures carry data-figure="…" so the browser tests compare them with the API.
'use strict';

const TEXT = {
  zh: {
    signIn: '登录', tenant: '租户', login: '用户名或邮箱', password: '密码', signOut: '退出',
    wrong: '用户名或密码错误', locked: '失败次数过多，请稍后再试', overview: '概览',
    customers: '客户', tasks: '任务', tickets: '工单', imports: '导入', modules: '模块',
    audit: '审计日志', search: '搜索', name: '姓名', phones: '电话', stage: '阶段',
    channel: '来源', created: '创建时间', total: '客户总数', openTasks: '待办任务',
    overdueTasks: '逾期任务', openTickets: '处理中工单', profile: '资料', tags: '标签',
    timeline: '时间线', enrolments: 'SOP', history: '变更记录', none: '暂无', more: '更多',
    title: '标题', assignee: '负责人', due: '截止', status: '状态', subject: '主题',
    priority: '优先级', source: '文件', rows: '行数', createdN: '新建', mergedN: '合并',
    rejected: '拒绝', errors: '错误', version: '版本', industry: '行业',
    capabilities: '能力', at: '时间', actor: '操作人', action: '操作', entity: '对象',
    owner: '归属', emails: '邮箱', attributes: '属性', amount: '金额', language: 'English',
    forbidden: '你的角色不能查看此页', steps: '步骤', dryRun: '试运行（未来 7 天）', dryRunGo: '试运行', step: '步骤', detail: '内容', named: '名称', bills: '账单', reference: '单号', kind: '类型', segments: '分群', sops: 'SOP', campaigns: '群发', count: '人数', enrolled: '参与', variant: '版本',
    analytics: '分析', funnel: '漏斗', retention: '留存（按周，首次下单）', revenue: '营收（按月）', entered: '进入', conversion: '转化率', median: '中位用时', days: '天数', apply: '查看', cohort: '周', reached: '到达', done: '完成', skipped: '跳过', exited: '退出', currency: '币种',
    backlog: '待处理', unassigned: '未分配', attainment: '达成率', target: '指标', met: '达标', breached: '超时', running: '进行中', atRisk: '将超时', newTickets: '新建', resolvedTickets: '已解决', agents: '坐席负载', open: '处理中',
    FIRST_RESPONSE: '首次响应', NEXT_RESPONSE: '再次响应', RESOLUTION: '解决',
    stagesOverTime: '客户阶段（按周）', dataQuality: '数据质量（近 30 天）', missingContact: '缺少联系方式',
    statements: '结算', participant: '参与方', role: '角色', month: '月份', account: '账户', reason: '原因', download: '下载 CSV',
    VISIT: '到店', PAGE_VIEW: '浏览', CONSULT: '咨询', ORDER: '下单', COUPON_USED: '用券', REFUND: '退款', MESSAGE_IN: '客户消息', MESSAGE_OUT: '发出消息',
    recipients: '对象', sent: '已发送', delivered: '已送达', opened: '已打开', clicked: '已点击', converted: '已转化', failed: '失败',
    LEAD: '线索', PROSPECT: '意向', CUSTOMER: '客户', LOYAL: '忠诚', DORMANT: '沉睡',
    CHURNED: '流失',
  },
  en: {
    signIn: 'Sign in', tenant: 'Tenant', login: 'User id or e-mail', password: 'Password',
    signOut: 'Sign out', wrong: 'Wrong user or password', locked: 'Too many failed sign-ins: try again later',
    overview: 'Overview', customers: 'Customers', tasks: 'Tasks', tickets: 'Tickets',
    imports: 'Imports', modules: 'Modules', audit: 'Audit log', search: 'Search', name: 'Name',
    phones: 'Phones', stage: 'Stage', channel: 'Source', created: 'Created',
    total: 'Customers', openTasks: 'Open tasks', overdueTasks: 'Overdue tasks',
    openTickets: 'Open tickets', profile: 'Profile', tags: 'Tags', timeline: 'Timeline',
    enrolments: 'SOPs', history: 'Changes', none: 'None', more: 'More', title: 'Title',
    assignee: 'Assignee', due: 'Due', status: 'Status', subject: 'Subject', priority: 'Priority',
    source: 'File', rows: 'Rows', createdN: 'Created', mergedN: 'Merged', rejected: 'Rejected',
    errors: 'Errors', version: 'Version', industry: 'Industry', capabilities: 'Capabilities',
    at: 'At', actor: 'By', action: 'Action', entity: 'Entity', owner: 'Owner',
    emails: 'E-mails', attributes: 'Attributes', amount: 'Amount', language: '中文',
    forbidden: 'Your role may not see this page', steps: 'Steps', dryRun: 'Dry run (next 7 days)', dryRunGo: 'Dry run', step: 'Step', detail: 'Detail', named: 'Name', bills: 'Bills', reference: 'Reference', kind: 'Kind', segments: 'Segments', sops: 'SOPs', campaigns: 'Campaigns', count: 'Customers', enrolled: 'Enrolments', variant: 'Variant',
    analytics: 'Analytics', funnel: 'Funnel', retention: 'Retention (weekly, first order)', revenue: 'Revenue (monthly)', entered: 'Entered', conversion: 'Conversion', median: 'Median time', days: 'Days', apply: 'Show', cohort: 'Week', reached: 'Reached', done: 'Done', skipped: 'Skipped', exited: 'Exited', currency: 'Currency',
    backlog: 'Backlog', unassigned: 'Unassigned', attainment: 'attainment', target: 'Target', met: 'Met', breached: 'Breached', running: 'Running', atRisk: 'At risk', newTickets: 'Opened', resolvedTickets: 'Resolved', agents: 'Agents', open: 'Open',
    FIRST_RESPONSE: 'First response', NEXT_RESPONSE: 'Next response', RESOLUTION: 'Resolution',
    stagesOverTime: 'Stages over time (weekly)', dataQuality: 'Data quality (30 days)', missingContact: 'Missing contact',
    statements: 'Statements', participant: 'Participant', role: 'Role', month: 'Month', account: 'Account', reason: 'Reason', download: 'Download CSV',
    VISIT: 'Store visit', PAGE_VIEW: 'Page view', CONSULT: 'Consult', ORDER: 'Order', COUPON_USED: 'Coupon used', REFUND: 'Refund', MESSAGE_IN: 'Message in', MESSAGE_OUT: 'Message out',
    recipients: 'Recipients', sent: 'Sent', delivered: 'Delivered', opened: 'Opened', clicked: 'Clicked', converted: 'Converted', failed: 'Failed',
    LEAD: 'Lead', PROSPECT: 'Prospect', CUSTOMER: 'Customer', LOYAL: 'Loyal',
    DORMANT: 'Dormant', CHURNED: 'Churned',
  },
};
const STAGES = ['LEAD', 'PROSPECT', 'CUSTOMER', 'LOYAL', 'DORMANT', 'CHURNED'];
const EVENT_TYPES = ['VISIT', 'PAGE_VIEW', 'CONSULT', 'ORDER', 'COUPON_USED', 'REFUND', 'MESSAGE_IN', 'MESSAGE_OUT'];

let lang = localStorage.getItem('shoal.lang') || (navigator.language.startsWith('zh') ? 'zh' : 'en');
/** Switches between Chinese and English (kept in this browser), then redraws with `redraw`. */
const flipLanguage = (redraw) => () => { lang = lang === 'zh' ? 'en' : 'zh'; localStorage.setItem('shoal.lang', lang); redraw(); };
let me = null;
const t = (key) => TEXT[lang][key] || key;

/** An element: h('td', { class: 'wide' }, 'text', child…); strings become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const csrf = () => {
  const found = document.cookie.split('; ').find((c) => c.startsWith('shoal_csrf='));
  return found ? decodeURIComponent(found.slice('shoal_csrf='.length)) : '';
};

class SignedOut extends Error {}

/** Runs a GraphQL operation as the signed-in user; throws on errors. */
async function api(query, variables) {
  const res = await fetch('/graphql', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf() },
    body: JSON.stringify({ query, variables: variables || {} }),
  });
  if (res.status === 401) throw new SignedOut();
  const body = await res.json();
  if (body.errors && body.errors.length) {
    const error = new Error(body.errors.map((e) => e.message).join('; '));
    error.code = body.errors[0].extensions && body.errors[0].extensions.code;
    throw error;
  }
  return body.data;
}

// times in the tenant's zone, as every report of Shoal
const when = (iso) => (iso ? new Date(iso).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', { timeZone: (me && me.timeZone) || undefined }) : '');
const edges = (connection) => connection.edges.map((e) => e.node);

function table(columns, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted', 'data-empty': '' }, empty || t('none'));
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.wide ? 'wide' : null }, t(c.label))))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map((c) => h('td', { class: c.wide ? 'wide' : null }, c.cell(row))))))));
}

function card(label, figure, value) {
  return h('div', { class: 'card' }, h('div', { class: 'figure', 'data-figure': figure }, value), h('div', { class: 'label' }, label));
}

// ---- charts: ECharts (core/api/assets/echarts-*), loaded once, on the first page that draws

let echartsLoaded = null;
function echartsLib() {
  if (!echartsLoaded) {
    echartsLoaded = new Promise((resolve, reject) => {
      document.head.append(h('script', { src: '/assets/echarts-6.1.0/echarts.min.js', onload: () => resolve(window.echarts), onerror: reject }));
    });
  }
  return echartsLoaded;
}

/** A chart drawn as SVG once ECharts is loaded; `data-drawn` is set when it is. */
function chart(name, option) {
  const el = h('div', { class: 'chart', 'data-chart': name });
  echartsLib().then((echarts) => {
    const width = Math.max(280, Math.min(window.innerWidth - 48, 760));
    const c = echarts.init(el, null, { renderer: 'svg', width, height: 300 });
    c.setOption(Object.assign({ animation: false, textStyle: { fontFamily: 'inherit' } }, option));
    el.setAttribute('data-drawn', '');
  }, () => el.replaceChildren(h('p', { class: 'error', 'data-error': 'charts' }, 'charts did not load')));
  return el;
}

const percent = (x) => (x === null || x === undefined ? '—' : `${(x * 100).toFixed(1)}%`);
/** Seconds as the two largest units: `2d 3h`, `45m`, `30s`. */
function duration(s) {
  if (s === null || s === undefined) return '—';
  const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts = [];
  for (const [u, n] of units) {
    if (s >= n && parts.length < 2) { parts.push(`${Math.floor(s / n)}${u}`); s %= n; }
  }
  return parts.join(' ') || '0s';
}

// ---- pages ---------------------------------------------------------------------------

async function overview() {
  // one query per figure: a figure the role may not read shows "—", the others still show
  const figure = (query, pick) => api(query).then(pick, (e) => {
    if (e instanceof SignedOut) throw e;
    return '—';
  });
  const count = (c) => `${c.edges.length}${c.pageInfo.hasNextPage ? '+' : ''}`;
  const page = '{ edges { node { id } } pageInfo { hasNextPage } }';
  const [total, openTasks, overdue, openTickets, ...stages] = await Promise.all([
    figure('{ customers { totalCount } }', (d) => d.customers.totalCount),
    figure(`{ tasks(filter: { status: "open" }, first: 100) ${page} }`, (d) => count(d.tasks)),
    figure(`{ tasks(filter: { overdue: true }, first: 100) ${page} }`, (d) => count(d.tasks)),
    figure(`{ tickets(filter: { categories: [OPEN] }, first: 100) ${page} }`, (d) => count(d.tickets)),
    ...STAGES.map((s) => figure(`{ customers(filter: { stages: [${s}] }) { totalCount } }`, (d) => d.customers.totalCount)),
  ]);
  return [
    h('h1', {}, t('overview')),
    h('div', { class: 'cards' },
      card(t('total'), 'customers.total', total),
      card(t('openTasks'), 'tasks.open', openTasks),
      card(t('overdueTasks'), 'tasks.overdue', overdue),
      card(t('openTickets'), 'tickets.open', openTickets)),
    h('h2', {}, t('stage')),
    h('div', { class: 'cards' }, STAGES.map((s, i) => card(t(s), `customers.${s}`, stages[i]))),
  ];
}

async function customers(params) {
  const q = params.get('q') || '';
  const stage = STAGES.includes(params.get('stage')) ? params.get('stage') : '';
  const tag = params.get('tag') || '';
  const filter = {};
  if (q) filter.search = q;
  if (stage) filter.stages = [stage];
  if (tag) filter.tags = { all: [tag] };
  const [d, tags] = await Promise.all([
    api(`query($f: CustomerFilterInput) { customers(first: 50, filter: $f) {
      totalCount edges { node { id displayName phones lifecycleStage sourceChannel createdAt } } } }`,
    { f: Object.keys(filter).length ? filter : null }),
    api('{ tags { id name } }').then((x) => x.tags, (e) => { if (e instanceof SignedOut) throw e; return []; }),
  ]);
  const input = h('input', { name: 'q', value: q, placeholder: t('search'), 'aria-label': t('search') });
  const stages = h('select', { name: 'stage', 'aria-label': t('stage') }, h('option', { value: '' }, `${t('stage')}: —`),
    STAGES.map((s) => h('option', { value: s, selected: s === stage ? '' : null }, t(s))));
  const tagPick = h('select', { name: 'tag', 'aria-label': t('tags') }, h('option', { value: '' }, `${t('tags')}: —`),
    tags.map((x) => h('option', { value: x.name, selected: x.name === tag ? '' : null }, x.name)));
  const search = h('form', { class: 'search', 'data-form': 'customers', onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (input.value) p.set('q', input.value);
    if (stages.value) p.set('stage', stages.value);
    if (tagPick.value) p.set('tag', tagPick.value);
    location.hash = `#/customers?${p}`;
  } }, input, stages, tagPick, h('button', { type: 'submit' }, t('search')));
  return [
    h('h1', {}, t('customers'), ' ', h('span', { class: 'muted', 'data-figure': 'customers.count' }, d.customers.totalCount)),
    search,
    table([
      { label: 'name', cell: (c) => h('a', { href: `#/customers/${encodeURIComponent(c.id)}`, 'data-customer': c.id }, c.displayName) },
      { label: 'phones', cell: (c) => c.phones.join(', ') },
      { label: 'stage', cell: (c) => t(c.lifecycleStage) },
      { label: 'channel', wide: true, cell: (c) => c.sourceChannel },
      { label: 'created', wide: true, cell: (c) => when(c.createdAt) },
    ], edges(d.customers)),
  ];
}

async function customer(id) {
  const d = await api(`query($id: ID!) {
    customer(id: $id) { id displayName phones emails lifecycleStage sourceChannel ownerId attributes createdAt
      tags { tag { name } } timeline(first: 20) { edges { node { type name occurredAt amount { amount currency } } } }
      history(first: 20) { at actorId action } }
    enrolments(customerId: $id, first: 20) { edges { node { id sopId status stepIndex enrolledAt } } }
    tasks(filter: { customerId: $id }, first: 20) { edges { node { title assignee dueAt status } } }
    tickets(filter: { customerId: $id }, first: 20) { edges { node { id subject status priority createdAt } } } }`, { id });
  // bills go by the bills scope: a role without it sees the rest of the page
  const bills = await api('query($id: ID!) { customerBills(customerId: $id) { reference kind total { amount currency } createdAt } }', { id })
    .then((b) => b.customerBills, (e) => { if (e instanceof SignedOut) throw e; return null; });
  const c = d.customer;
  const row = (label, value) => [h('dt', {}, t(label)), h('dd', { 'data-field': label }, value)];
  return [
    h('h1', { 'data-figure': 'customer.name' }, c.displayName),
    h('dl', { class: 'profile' },
      row('phones', c.phones.join(', ')), row('emails', c.emails.join(', ')),
      row('stage', t(c.lifecycleStage)), row('channel', c.sourceChannel), row('owner', c.ownerId || ''),
      row('created', when(c.createdAt)), row('attributes', h('pre', {}, JSON.stringify(c.attributes, null, 1)))),
    h('h2', {}, t('tags')),
    c.tags.length ? h('div', {}, c.tags.map((x) => h('span', { class: 'tag' }, x.tag.name))) : h('p', { class: 'muted' }, t('none')),
    h('h2', {}, t('timeline')),
    table([
      { label: 'at', cell: (e) => when(e.occurredAt) },
      { label: 'action', cell: (e) => e.name ? `${e.type} · ${e.name}` : e.type },
      { label: 'amount', cell: (e) => e.amount ? `${e.amount.amount} ${e.amount.currency}` : '' },
    ], edges(c.timeline)),
    h('h2', {}, t('enrolments')),
    table([
      { label: 'enrolments', cell: (e) => e.sopId },
      { label: 'status', cell: (e) => e.status },
      { label: 'created', cell: (e) => when(e.enrolledAt) },
    ], edges(d.enrolments)),
    h('h2', {}, t('tasks')),
    table([
      { label: 'title', cell: (x) => x.title }, { label: 'assignee', cell: (x) => x.assignee },
      { label: 'due', cell: (x) => when(x.dueAt) }, { label: 'status', cell: (x) => x.status },
    ], edges(d.tasks)),
    h('h2', {}, t('tickets')),
    table([
      { label: 'subject', cell: (x) => x.subject }, { label: 'status', cell: (x) => x.status },
      { label: 'priority', cell: (x) => x.priority }, { label: 'created', cell: (x) => when(x.createdAt) },
    ], edges(d.tickets)),
    h('h2', {}, t('bills')),
    bills === null ? h('p', { class: 'muted' }, t('forbidden')) : table([
      { label: 'at', cell: (b) => when(b.createdAt) }, { label: 'reference', cell: (b) => b.reference },
      { label: 'kind', cell: (b) => b.kind }, { label: 'amount', cell: (b) => `${b.total.amount} ${b.total.currency}` },
    ], bills),
    h('h2', {}, t('history')),
    table([
      { label: 'at', cell: (x) => when(x.at) }, { label: 'actor', cell: (x) => x.actorId },
      { label: 'action', cell: (x) => x.action },
    ], c.history),
  ];
}

async function tasks() {
  const d = await api(`{ tasks(first: 100) { edges { node { title assignee dueAt status customerId } } } }`);
  return [h('h1', {}, t('tasks')), table([
    { label: 'title', cell: (x) => x.title }, { label: 'assignee', cell: (x) => x.assignee },
    { label: 'due', cell: (x) => when(x.dueAt) }, { label: 'status', cell: (x) => x.status },
    { label: 'customers', wide: true, cell: (x) => h('a', { href: `#/customers/${encodeURIComponent(x.customerId)}` }, x.customerId) },
  ], edges(d.tasks))];
}

async function tickets() {
  const now = new Date();
  const from = new Date(now.getTime() - 30 * 86400e3);
  const [d, f] = await Promise.all([
    api(`{ tickets(first: 100) { edges { node { id subject status priority assignee createdAt } } } }`),
    api(`query($i: TicketFiguresInput!) { ticketFigures(input: $i) { sla { target met breached running attainment }
        series { start opened resolved backlog } agents { userId name open breached atRisk resolved } backlogNow unassignedNow } }`,
    { i: { from: from.toISOString(), to: now.toISOString(), period: 'DAY' } }),
  ]);
  const x = f.ticketFigures;
  return [
    h('h1', {}, t('tickets')),
    h('div', { class: 'cards' },
      card(t('backlog'), 'tickets.backlog', x.backlogNow),
      card(t('unassigned'), 'tickets.unassigned', x.unassignedNow),
      x.sla.map((s) => card(`${t(s.target)} · ${t('attainment')}`, `sla.${s.target}`, percent(s.attainment)))),
    x.sla.length ? table([
      { label: 'target', cell: (s) => t(s.target) }, { label: 'met', cell: (s) => s.met },
      { label: 'breached', cell: (s) => s.breached }, { label: 'running', cell: (s) => s.running },
    ], x.sla) : null,
    chart('tickets', {
      tooltip: { trigger: 'axis' },
      legend: { top: 0 },
      xAxis: { type: 'category', data: x.series.map((p) => p.start.slice(5)) },
      yAxis: { type: 'value', minInterval: 1 },
      series: [['opened', 'newTickets', 'bar'], ['resolved', 'resolvedTickets', 'bar'], ['backlog', 'backlog', 'line']].map(([k, label, type]) => ({ name: t(label), type, data: x.series.map((p) => p[k]) })),
    }),
    h('h2', {}, t('agents')),
    table([
      { label: 'assignee', cell: (a) => a.name || a.userId },
      { label: 'open', cell: (a) => h('span', { 'data-figure': `agent.${a.userId}` }, a.open) },
      { label: 'breached', cell: (a) => a.breached }, { label: 'atRisk', cell: (a) => a.atRisk },
      { label: 'resolvedTickets', wide: true, cell: (a) => a.resolved },
    ], x.agents),
    h('h2', {}, t('tickets')),
    table([
      { label: 'subject', cell: (x) => x.subject }, { label: 'status', cell: (x) => x.status },
      { label: 'priority', cell: (x) => x.priority }, { label: 'assignee', cell: (x) => x.assignee || '' },
      { label: 'created', wide: true, cell: (x) => when(x.createdAt) },
    ], edges(d.tickets)),
  ];
}

async function imports() {
  const d = await api(`{ importJobs(first: 50) { edges { node { id kind source status rowsRead created merged rejected startedAt
      errors(limit: 5) { row column reason } } } } }`);
  return [h('h1', {}, t('imports')), table([
    { label: 'source', cell: (j) => j.source }, { label: 'status', cell: (j) => j.status },
    { label: 'rows', cell: (j) => j.rowsRead }, { label: 'createdN', cell: (j) => j.created },
    { label: 'mergedN', cell: (j) => j.merged }, { label: 'rejected', cell: (j) => j.rejected },
    { label: 'errors', wide: true, cell: (j) => [j.errors.map((e) => `#${e.row} ${e.column}: ${e.reason}`).join('\n'),
      j.rejected ? h('div', {}, h('a', { href: `/imports/${encodeURIComponent(j.id)}/errors.csv`, download: `${j.id}-errors.csv`, 'data-errors-file': j.id }, t('download'))) : null] },
  ], edges(d.importJobs))];
}

async function modules() {
  const d = await api('{ modules { id name version industry capabilities } }');
  return [h('h1', {}, t('modules')), table([
    { label: 'named', cell: (m) => m.name }, { label: 'version', cell: (m) => m.version },
    { label: 'industry', cell: (m) => m.industry },
    { label: 'capabilities', wide: true, cell: (m) => m.capabilities.join(', ') },
  ], d.modules)];
}

async function audit() {
  const d = await api('{ auditLog(first: 50) { edges { node { at actorId action entityType entityId } } } }');
  return [h('h1', {}, t('audit')), table([
    { label: 'at', cell: (x) => when(x.at) }, { label: 'actor', cell: (x) => x.actorId },
    { label: 'action', cell: (x) => x.action },
    { label: 'entity', wide: true, cell: (x) => `${x.entityType} ${x.entityId}` },
  ], edges(d.auditLog))];
}

async function segments() {
  const d = await api('{ segments { id name count } }');
  return [h('h1', {}, t('segments')), table([
    { label: 'named', cell: (x) => x.name },
    { label: 'count', cell: (x) => h('span', { 'data-figure': `segment.${x.id}` }, x.count) },
  ], d.segments)];
}

async function sops() {
  const d = await api('{ sops { id name status version enrolmentCounts { status count } } }');
  return [h('h1', {}, t('sops')), table([
    { label: 'named', cell: (x) => h('a', { href: `#/sops/${encodeURIComponent(x.id)}`, 'data-sop': x.id }, x.name) },
    { label: 'status', cell: (x) => x.status },
    { label: 'version', wide: true, cell: (x) => x.version },
    { label: 'enrolled', cell: (x) => x.enrolmentCounts.map((c) => `${c.status} ${c.count}`).join(' · ') },
  ], d.sops)];
}

/** What a step does, in a few words: its kind, the part that tells it apart, its condition. */
function stepSummary(step) {
  const detail = step.channel || step.title || step.tag || step.url || step.time
    || (step.seconds ? `${step.seconds}s` : '');
  const condition = step.when ? ` (${step.when})` : '';
  return `${step.kind || '?'}${detail ? ` · ${detail}` : ''}${condition}`;
}

async function sop(id) {
  const d = await api(`query($id: ID!) { sop(id: $id) { id name status version definition enrolmentCounts { status count } }
    segments { id name count }
    sopFigures(sopId: $id) { steps { stepId reached outcomes { name count } reasons { outcome reason enrolments } messages { name count } } } }`, { id });
  const steps = (d.sop.definition && d.sop.definition.steps) || [];
  const figures = Object.fromEntries(d.sopFigures.steps.map((x) => [x.stepId, x]));
  const stepFigures = (step) => {
    const x = figures[step.id];
    if (!x) return h('div', { class: 'muted', 'data-figure': `sop.step.${step.id}` }, `${t('reached')} 0`);
    const n = (name) => (x.outcomes.find((o) => o.name === name) || { count: 0 }).count;
    const sent = (x.messages.find((m) => m.name === 'sent') || { count: 0 }).count;
    return h('div', { class: 'muted', 'data-figure': `sop.step.${step.id}` },
      `${t('reached')} ${x.reached} · ${t('done')} ${n('done')} · ${t('skipped')} ${n('skipped')} · ${t('exited')} ${n('exited')}`,
      x.messages.length ? ` · ${t('sent')} ${sent}` : '',
      x.reasons.length ? h('div', {}, x.reasons.slice(0, 3).map((why) => `${why.outcome}: ${why.reason} (${why.enrolments})`).join(' · ')) : null);
  };
  const diagram = h('ol', { class: 'steps', 'data-figure': 'sop.steps' }, steps.map((step) =>
    h('li', { class: 'step' }, h('strong', {}, step.id), h('span', { class: 'muted' }, ` ${stepSummary(step)}`), stepFigures(step))));
  const plan = h('div', { 'data-plan': '' });
  const segment = h('select', { name: 'segment', 'aria-label': t('segments') },
    d.segments.map((x) => h('option', { value: x.id }, `${x.name} (${x.count})`)));
  const run = async (e) => {
    e.preventDefault();
    plan.replaceChildren(h('p', { class: 'muted' }, '…'));
    const to = new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString();
    try {
      const r = await api('query($s: ID!, $g: ID!, $to: DateTime!) { simulateSop(sopId: $s, segmentId: $g, to: $to) { customerId at stepId outcome detail } }',
        { s: id, g: segment.value, to });
      plan.replaceChildren(h('p', { class: 'muted', 'data-figure': 'plan.count' }, r.simulateSop.length), table([
        { label: 'at', cell: (x) => when(x.at) },
        { label: 'customers', cell: (x) => h('a', { href: `#/customers/${encodeURIComponent(x.customerId)}` }, x.customerId) },
        { label: 'step', cell: (x) => x.stepId }, { label: 'status', cell: (x) => x.outcome },
        { label: 'detail', wide: true, cell: (x) => x.detail },
      ], r.simulateSop.slice(0, 200)));
    } catch (err) {
      if (err instanceof SignedOut) throw err;
      plan.replaceChildren(h('p', { class: 'error', 'data-error': err.code || '' }, err.message));
    }
  };
  return [
    h('h1', { 'data-figure': 'sop.name' }, d.sop.name),
    h('p', { class: 'muted' }, `${d.sop.status} · v${d.sop.version} · `,
      d.sop.enrolmentCounts.map((c) => `${c.status} ${c.count}`).join(' · ')),
    h('h2', {}, t('steps')), diagram,
    h('h2', {}, t('dryRun')),
    d.segments.length
      ? h('form', { class: 'search', 'data-form': 'dry-run', onsubmit: run }, segment, h('button', { type: 'submit' }, t('dryRunGo')))
      : h('p', { class: 'muted' }, t('none')),
    plan,
  ];
}

async function campaigns() {
  const d = await api(`{ campaigns { id name channel status createdAt
      stats { variants { variant recipients sent delivered opened clicked converted failed } } } }`);
  const rows = d.campaigns.flatMap((c) => (c.stats.variants.length ? c.stats.variants : [null]).map((v) => ({ c, v })));
  const n = (key) => ({ label: key, cell: (r) => (r.v ? r.v[key] : '') });
  return [h('h1', {}, t('campaigns')), table([
    { label: 'named', cell: (r) => r.c.name }, { label: 'channel', wide: true, cell: (r) => r.c.channel },
    { label: 'status', cell: (r) => r.c.status }, { label: 'variant', cell: (r) => (r.v ? r.v.variant : '') },
    n('recipients'), n('sent'), n('delivered'), n('opened'), n('clicked'), n('converted'), n('failed'),
  ], rows)];
}

async function analytics(params) {
  const days = Number(params.get('days')) || 90;
  const steps = (params.get('steps') || 'VISIT,CONSULT,ORDER').split(',').filter((x) => EVENT_TYPES.includes(x)).slice(0, 4);
  const now = new Date();
  const from = new Date(now.getTime() - days * 86400e3);
  const weeksAgo = new Date(now.getTime() - 8 * 7 * 86400e3);
  const yearAgo = new Date(now.getTime() - 365 * 86400e3);
  const [f, r, rev] = await Promise.all([
    api(`query($i: FunnelInput!) { funnel(input: $i) { overall { entered excluded
        steps { label customers dropOff conversionFromPrevious conversionFromStart medianSecondsFromPrevious } } } }`,
      { i: { steps: steps.map((x) => ({ label: t(x), event: { type: x } })), from: from.toISOString(), to: now.toISOString() } }),
    api(`query($i: RetentionInput!) { retention(input: $i) { cohorts { start customers returned rates } } }`,
      { i: { starting: { type: 'ORDER' }, returning: { type: 'ORDER' }, period: 'WEEK', periods: 8, from: weeksAgo.toISOString(), to: now.toISOString() } }),
    api(`query($i: RevenueInput!) { revenue(input: $i) { key currency total points { start amount } } }`,
      { i: { period: 'MONTH', from: yearAgo.toISOString(), to: now.toISOString() } }),
  ]);
  const quarterAgo = new Date(now.getTime() - 12 * 7 * 86400e3);
  const stagesOverTime = await api(`query($i: StageTrendInput!) { stageTrend(input: $i) { start stages { stage customers } } }`,
    { i: { from: quarterAgo.toISOString(), to: now.toISOString(), period: 'WEEK' } });
  // tenant-wide: only for readers of every customer (others see the rest of the page)
  const day = (d) => d.toLocaleDateString('en-CA', { timeZone: me.timeZone || 'UTC' });
  const quality = await api(`query($f: NaiveDate!, $t: NaiveDate!) { dataQualityTrend(from: $f, to: $t) { day snapshot { missingContactRate duplicatesPending } } }`,
    { f: day(new Date(now.getTime() - 29 * 86400e3)), t: day(now) })
    .then((x) => x.dataQualityTrend, (e) => { if (e instanceof SignedOut) throw e; return null; });
  const funnel = f.funnel.overall;
  const pick = (i) => h('select', { name: `step${i}`, 'aria-label': `${t('step')} ${i + 1}` },
    i >= 2 ? h('option', { value: '' }, '—') : null,
    EVENT_TYPES.map((x) => h('option', { value: x, selected: steps[i] === x ? '' : null }, t(x))));
  const form = h('form', { class: 'search', 'data-form': 'funnel', onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const chosen = [0, 1, 2, 3].map((i) => data.get(`step${i}`)).filter(Boolean);
    location.hash = `#/analytics?steps=${chosen.join(',')}&days=${data.get('days')}`;
  } }, [0, 1, 2, 3].map(pick),
  h('select', { name: 'days', 'aria-label': t('days') }, [7, 30, 90, 365].map((d) => h('option', { value: d, selected: d === days ? '' : null }, `${d} ${t('days')}`))),
  h('button', { type: 'submit' }, t('apply')));
  const cohorts = r.retention.cohorts;
  const shade = (x) => (x === null ? null : `background: rgba(37, 99, 235, ${Math.min(0.85, 0.08 + x).toFixed(2)}); color: ${x > 0.45 ? '#fff' : 'inherit'}`);
  return [
    h('h1', {}, t('analytics')),
    h('h2', {}, t('funnel')), form,
    chart('funnel', {
      tooltip: { trigger: 'item' },
      series: [{ type: 'funnel', sort: 'none', left: '10%', width: '80%', minSize: '8%', label: { formatter: '{b}: {c}' },
        data: funnel.steps.map((x) => ({ name: x.label, value: x.customers })) }],
    }),
    table([
      { label: 'step', cell: (x) => x.label },
      { label: 'count', cell: (x) => h('span', { 'data-figure': `funnel.${funnel.steps.indexOf(x)}` }, x.customers) },
      { label: 'conversion', cell: (x) => percent(x.conversionFromStart) },
      { label: 'median', wide: true, cell: (x) => duration(x.medianSecondsFromPrevious) },
    ], funnel.entered ? funnel.steps : []),
    h('h2', {}, t('retention')),
    table([
      { label: 'cohort', cell: (c) => c.start },
      { label: 'count', cell: (c) => h('span', { 'data-figure': `cohort.${c.start}` }, c.customers) },
      ...[0, 1, 2, 3, 4, 5, 6, 7].map((k) => ({ label: `+${k + 1}`, cell: (c) => h('span', { class: 'cell', style: shade(c.rates[k]) }, percent(c.rates[k])) })),
    ], cohorts),
    h('h2', {}, t('revenue')),
    rev.revenue.length
      ? chart('revenue', {
        tooltip: { trigger: 'axis' },
        legend: { top: 0 },
        xAxis: { type: 'category', data: rev.revenue[0].points.map((p) => p.start.slice(0, 7)) },
        yAxis: { type: 'value' },
        series: rev.revenue.map((s) => ({ name: s.currency, type: 'line', data: s.points.map((p) => Number(p.amount)) })),
      })
      : h('p', { class: 'muted', 'data-empty': '' }, t('none')),
    rev.revenue.map((s) => h('p', { class: 'muted', 'data-figure': `revenue.${s.currency}` }, `${s.currency} ${s.total}`)),
    h('h2', {}, t('stagesOverTime')),
    chart('stages', {
      tooltip: { trigger: 'axis' },
      legend: { top: 0 },
      xAxis: { type: 'category', data: stagesOverTime.stageTrend.map((p) => p.start.slice(5)) },
      yAxis: { type: 'value', minInterval: 1 },
      series: STAGES.map((stage) => ({ name: t(stage), type: 'line', stack: 'stages', areaStyle: {},
        data: stagesOverTime.stageTrend.map((p) => (p.stages.find((x) => x.stage === stage) || { customers: 0 }).customers) })),
    }),
    h('p', { class: 'muted' }, STAGES.map((stage) => {
      const last = stagesOverTime.stageTrend[stagesOverTime.stageTrend.length - 1];
      const n = last ? (last.stages.find((x) => x.stage === stage) || { customers: 0 }).customers : 0;
      return h('span', { 'data-figure': `stage.${stage}` }, `${t(stage)} ${n}  `);
    })),
    quality ? [
      h('h2', {}, t('dataQuality')),
      chart('quality', {
        tooltip: { trigger: 'axis' },
        xAxis: { type: 'category', data: quality.map((d) => d.day.slice(5)) },
        yAxis: { type: 'value', min: 0, max: 1, axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` } },
        series: [{ name: t('missingContact'), type: 'line', connectNulls: false,
          data: quality.map((d) => (d.snapshot ? d.snapshot.missingContactRate : null)) }],
      }),
    ] : null,
  ];
}

/** The instant local midnight of `y-m-d` is in time zone `tz` (Intl gives the zone's offset). */
function zonedMidnight(y, m, d, tz) {
  const utc = Date.UTC(y, m - 1, d);
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })
    .formatToParts(new Date(utc)).map((p) => [p.type, Number(p.value)]));
  const local = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return new Date(utc - (local - utc));
}

/** This month in the tenant's zone, as `YYYY-MM`. */
function thisMonth() {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: me.timeZone || 'UTC', year: 'numeric', month: 'numeric' })
    .formatToParts(new Date()).map((p) => [p.type, p.value]));
  return `${parts.year}-${String(parts.month).padStart(2, '0')}`;
}

async function statements(params) {
  const month = /^\d{4}-\d{2}$/.test(params.get('month') || '') ? params.get('month') : thisMonth();
  const [y, m] = month.split('-').map(Number);
  const tz = me.timeZone || 'UTC';
  const from = zonedMidnight(y, m, 1, tz).toISOString();
  const to = zonedMidnight(m === 12 ? y + 1 : y, m === 12 ? 1 : m + 1, 1, tz).toISOString();
  const list = (await api('{ participants { id name role parentId } }')).participants.slice(0, 50);
  // one request: each participant's statement under an alias
  const fields = list.map((p, i) => `s${i}: statement(participantId: $p${i}, from: $from, to: $to) {
      totals { amount currency } postings { billId account amount { amount currency } reason postedAt } }`).join('\n');
  const vars = Object.fromEntries(list.map((p, i) => [`p${i}`, p.id]));
  const decl = list.map((p, i) => `$p${i}: ID!`).join(', ');
  const d = list.length ? await api(`query(${decl}, $from: DateTime!, $to: DateTime!) { ${fields} }`, Object.assign(vars, { from, to })) : {};
  const chosen = params.get('participant') || (list[0] && list[0].id);
  const at = list.findIndex((p) => p.id === chosen);
  const picker = h('input', { type: 'month', name: 'month', value: month, 'aria-label': t('month') });
  const form = h('form', { class: 'search', 'data-form': 'statements', onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/statements?month=${picker.value}${chosen ? `&participant=${encodeURIComponent(chosen)}` : ''}`;
  } }, picker, h('button', { type: 'submit' }, t('apply')));
  const totals = (s) => (s.totals.length ? s.totals.map((x) => `${x.amount} ${x.currency}`).join(' · ') : '0');
  const csv = (id) => `/statements/${encodeURIComponent(id)}.csv?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
  return [
    h('h1', {}, t('statements')), form,
    table([
      { label: 'participant', cell: (p) => h('a', { href: `#/statements?month=${month}&participant=${encodeURIComponent(p.id)}`, 'data-participant': p.id }, p.name) },
      { label: 'role', cell: (p) => p.role },
      { label: 'amount', cell: (p) => h('span', { 'data-figure': `statement.${p.id}` }, totals(d[`s${list.indexOf(p)}`])) },
      { label: 'rows', cell: (p) => d[`s${list.indexOf(p)}`].postings.length },
      { label: 'download', wide: true, cell: (p) => h('a', { href: csv(p.id), download: `${p.id}-${month}.csv` }, 'CSV') },
    ], list),
    at >= 0 ? [
      h('h2', {}, `${list[at].name} · ${month}`),
      table([
        { label: 'at', cell: (x) => when(x.postedAt) }, { label: 'reference', cell: (x) => x.billId },
        { label: 'amount', cell: (x) => `${x.amount.amount} ${x.amount.currency}` },
        { label: 'reason', wide: true, cell: (x) => x.reason },
      ], d[`s${at}`].postings),
    ] : null,
  ];
}

const PAGES = { '': overview, customers, segments, sops, campaigns, analytics, statements, tasks, tickets, imports, modules, audit };

// ---- shell ---------------------------------------------------------------------------

function shell(page) {
  const nav = ['', 'customers', 'segments', 'sops', 'campaigns', 'analytics', 'statements', 'tasks', 'tickets', 'imports', 'modules', 'audit'].map((p) =>
    h('a', { href: `#/${p}`, class: p === page ? 'current' : null, 'data-page': p || 'overview' }, t(p || 'overview')));
  const flip = h('button', { class: 'plain', type: 'button', onclick: flipLanguage(route) }, t('language'));
  const out = h('button', { class: 'plain', type: 'button', 'data-action': 'sign-out', onclick: signOut }, t('signOut'));
  return h('header', {}, h('span', { class: 'brand' }, 'Shoal'), h('nav', {}, nav),
    h('span', { class: 'who', 'data-user': me.user.id }, `${me.user.name || me.user.id} · ${me.tenant}`), flip, out);
}

async function route() {
  const app = document.getElementById('app');
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  if (!me) return signInForm();
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const [page, id] = path.split('/');
  const params = new URLSearchParams(query || '');
  const main = h('main', { 'data-loading': '' }, h('p', { class: 'muted' }, '…'));
  app.replaceChildren(shell(page || ''), main);
  try {
    const detail = { customers: customer, sops: sop }[page];
    const render = detail && id ? () => detail(decodeURIComponent(id)) : () => (PAGES[page] || overview)(params);
    // a page gives nodes, lists of nodes, and null for what it leaves out
    main.replaceChildren(...(await render()).flat(2).filter((x) => x !== null && x !== undefined));
    main.removeAttribute('data-loading');
    main.setAttribute('data-ready', detail && id ? page.replace(/s$/, '') : page || 'overview');
  } catch (e) {
    if (e instanceof SignedOut) { me = null; return signInForm(); }
    const forbidden = e.code === 'FORBIDDEN';
    main.replaceChildren(h('p', { class: forbidden ? 'muted' : 'error', 'data-error': e.code || '' }, forbidden ? t('forbidden') : e.message));
    main.removeAttribute('data-loading');
  }
}

function signInForm(message) {
  const field = (name, type, label) => h('label', {}, t(label), h('br'), h('input', { name, type, required: true, autocomplete: name === 'password' ? 'current-password' : 'username' }));
  const form = h('form', { class: 'signin', 'data-form': 'sign-in', onsubmit: async (e) => {
    e.preventDefault();
    const body = Object.fromEntries(new FormData(form).entries());
    const res = await fetch('/auth/sign-in', { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.ok) { me = await res.json(); location.hash = '#/'; route(); } else signInForm(t(res.status === 429 ? 'locked' : 'wrong'));
  } },
  h('h1', {}, 'Shoal · ', t('signIn')), field('tenant', 'text', 'tenant'), field('login', 'text', 'login'),
  field('password', 'password', 'password'),
  message ? h('p', { class: 'error', 'data-error': '' }, message) : null,
  h('button', { type: 'submit' }, t('signIn')),
  h('button', { class: 'plain', type: 'button', onclick: flipLanguage(() => signInForm()) }, t('language')));
  document.getElementById('app').replaceChildren(form);
}

async function signOut() {
  await fetch('/auth/sign-out', { method: 'POST', credentials: 'same-origin', headers: { 'x-csrf-token': csrf() } });
  me = null;
  signInForm();
}

window.addEventListener('hashchange', route);
fetch('/auth/session', { credentials: 'same-origin' }).then(async (res) => {
  me = res.ok ? await res.json() : null;
  route();
});
