// Talki signalling test page: drives the HTTP API and the WebSocket protocol and logs every message.
// No WebRTC: "signals" are dummy descriptions, relayed by the server like real ones.

// The API may live on another origin (static pages on a CDN, API elsewhere): set it with
// <meta name="talki-api-base" content="https://api.example.org"> or ?api=https://api.example.org;
// that origin must list this page's origin in Hosting.AllowedOrigins.
const API_BASE = (new URLSearchParams(location.search).get('api')
  ?? document.querySelector('meta[name="talki-api-base"]')?.content ?? '').replace(/\/$/, '');
const API = API_BASE + '/talki';
const PROTOCOL_VERSION = 1;
const PING_INTERVAL_MS = 5 * 60 * 1000;
const MAX_LOG_ENTRIES = 500;
const DUMMY_SDP = 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=talki-test\r\nt=0 0\r\n';
const DUMMY_CANDIDATE = { candidate: 'candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host', sdpMid: '0', sdpMLineIndex: 0 };

const $ = (id) => document.getElementById(id);

const state = {
  session: null, // SessionResponse: {displayName, verified}
  ticket: null, // the last TicketResponse
  socket: null,
  you: null, // MemberView of this page's member
  room: null, // RoomView from welcome
  status: null, // admission status: pending | admitted | denied
  members: new Map(), // id -> MemberView of the other admitted members
  pending: new Map(), // id -> MemberView waiting for admission (admin only)
  peers: new Map(), // id -> {peer, peerEpoch, offerer, polite} from connect_to_peer
  sealsAt: 0,
  nextId: 1,
  pingTimer: 0,
  countdownTimer: 0,
};

// ---------------------------------------------------------------- DOM helpers

/** Builds an element. Text is always set as text, never parsed as HTML (display names are user input). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  node.append(...children.filter((child) => child != null && child !== false));
  return node;
}

const tick = () => el('span', { class: 'tick', title: 'verified', 'aria-label': 'verified' }, '✓');

function clockTime(date) {
  return `${date.toTimeString().slice(0, 8)}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

function formatDuration(ms) {
  const total = Math.ceil(ms / 1000);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, '0')}`;
}

function showNotice(text, kind = 'error') {
  const notice = $('notice');
  notice.textContent = text;
  notice.className = `notice ${kind}`;
  notice.hidden = false;
}

function clearNotice() {
  $('notice').hidden = true;
}

// ---------------------------------------------------------------- message log

/** Appends one entry. direction: 'out' (sent), 'in' (received) or 'info' (a local event). */
function log(direction, label, payload, { error = false } = {}) {
  const list = $('log');
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 24;
  const now = new Date();
  const arrow = { out: ['→', 'sent'], in: ['←', 'received'], info: ['•', 'event'] }[direction];
  const body = payload === undefined ? null : typeof payload === 'string' ? payload : JSON.stringify(payload, null, 2);
  list.append(el('div', { class: `entry ${direction}${error ? ' error' : ''}` },
    el('div', { class: 'entry-head' },
      el('span', { class: 'arrow', title: arrow[1], 'aria-label': arrow[1] }, arrow[0]),
      el('time', { datetime: now.toISOString() }, clockTime(now)),
      el('span', { class: 'label' }, label)),
    body === null ? null : el('pre', {}, body)));
  while (list.childElementCount > MAX_LOG_ENTRIES) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function nameOf(memberId) {
  if (state.you?.id === memberId) return 'you';
  return (state.members.get(memberId) ?? state.pending.get(memberId))?.displayName ?? memberId;
}

function labelFor(message) {
  switch (message.type) {
    case 'signal': return `signal from ${nameOf(message.from)}`;
    case 'connect_to_peer': return `connect_to_peer: ${message.peer.displayName}${message.offerer ? ' (you offer)' : ''}`;
    case 'peer_left': return `peer_left: ${nameOf(message.member)}`;
    case 'admission_request':
    case 'admitted':
    case 'denied': return `${message.type}: ${message.member.displayName}`;
    case 'error': return `error: ${message.code}`;
    default: return message.type;
  }
}

// ---------------------------------------------------------------- HTTP API

/** Calls the HTTP API; every POST carries a JSON body (`{}` when there is nothing to send). */
async function api(method, path, body, { expected = [] } = {}) {
  const init = { method, credentials: 'include', headers: { Accept: 'application/json' } };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }

  const url = API + path;
  log('out', `HTTP ${method} ${url}`, method === 'GET' ? undefined : body ?? {});
  let response;
  try {
    response = await fetch(url, init);
  } catch (failure) {
    log('info', `HTTP ${method} ${url} failed`, String(failure), { error: true });
    return { ok: false, status: 0, data: { code: 'network', message: 'The server could not be reached.' } };
  }

  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }

  const quiet = response.ok || expected.includes(response.status);
  log('in', `HTTP ${response.status} ${method} ${url}`, data ?? undefined, { error: !quiet });
  return { ok: response.ok, status: response.status, data };
}

function describeError({ status, data }) {
  if (data && typeof data === 'object' && data.code) {
    return `${data.code}: ${data.message}${data.reference ? ` (reference ${data.reference})` : ''}`;
  }
  return `HTTP ${status}`;
}

// ---------------------------------------------------------------- session

function setSession(session) {
  state.session = session;
  $('signInForm').hidden = Boolean(session);
  $('signedIn').hidden = !session;
  const name = $('userName');
  name.replaceChildren();
  if (session) name.append(session.displayName, session.verified ? tick() : '');
  $('createRoom').disabled = !session;
  $('joinRoom').disabled = !session;
}

async function restoreSession() {
  const result = await api('GET', '/session', undefined, { expected: [401] });
  setSession(result.ok ? result.data : null);
}

async function signIn(event) {
  event.preventDefault();
  const displayName = $('displayName').value.trim();
  if (!displayName) return showNotice('Enter a pseudonym first.');
  const result = await api('POST', '/session/anonymous', { displayName });
  if (!result.ok) return showNotice(describeError(result));
  clearNotice();
  setSession(result.data);
}

async function signOut() {
  const result = await api('POST', '/session/sign-out', {});
  if (!result.ok) return showNotice(describeError(result));
  setSession(null);
  showNotice('Signed out. An open room connection stays open until you leave.', 'info');
}

// ---------------------------------------------------------------- rooms

function showShareLink(roomId) {
  const url = `${location.origin}/?room=${encodeURIComponent(roomId)}`;
  $('shareLink').href = url;
  $('shareLink').textContent = url;
  $('share').hidden = false;
  history.replaceState(null, '', `/?room=${encodeURIComponent(roomId)}`);
}

async function createRoom() {
  const result = await api('POST', '/rooms', {});
  if (!result.ok) return showNotice(describeError(result));
  clearNotice();
  $('roomId').value = result.data.room;
  showShareLink(result.data.room);
  connect(result.data);
}

async function joinRoom(event) {
  event.preventDefault();
  const roomId = $('roomId').value.trim();
  if (!roomId) return showNotice('Enter a room id first.');
  const result = await api('POST', `/rooms/${encodeURIComponent(roomId)}/tickets`, {});
  if (!result.ok) return showNotice(describeError(result));
  clearNotice();
  showShareLink(result.data.room);
  connect(result.data);
}

// ---------------------------------------------------------------- WebSocket

function connect(ticket) {
  if (state.socket) {
    state.socket.close(1000, 'switching rooms');
    stopSocket();
  }

  Object.assign(state, { ticket, you: null, room: null, status: null });
  state.members.clear();
  state.pending.clear();
  state.peers.clear();
  startCountdown(ticket.sealsAt);

  const socket = new WebSocket(ticket.webSocketUrl);
  state.socket = socket;
  log('info', `WebSocket connecting to ${new URL(ticket.webSocketUrl).pathname}`);
  setSocketState('connecting…');
  socket.addEventListener('open', () => {
    if (socket !== state.socket) return;
    setSocketState('open');
    render();
    send({ type: 'hello', version: PROTOCOL_VERSION });
    state.pingTimer = setInterval(() => send({ type: 'ping' }), PING_INTERVAL_MS);
  });
  socket.addEventListener('message', (event) => {
    if (socket === state.socket) receive(event.data);
  });
  socket.addEventListener('error', () => log('info', 'WebSocket error', undefined, { error: true }));
  socket.addEventListener('close', (event) => onClose(socket, event));
  render();
}

function stopSocket() {
  clearInterval(state.pingTimer);
  state.socket = null;
  state.peers.clear();
}

/** Sends a client message with a fresh correlation id; returns false when the socket is not open. */
function send(message) {
  const socket = state.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    showNotice('The WebSocket is not open.');
    return false;
  }

  const { type, ...rest } = message;
  const full = { type, id: `${type}-${state.nextId++}`, ...rest };
  socket.send(JSON.stringify(full));
  log('out', type, full);
  return true;
}

function receive(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    log('in', 'unparseable frame', text, { error: true });
    return;
  }

  log('in', labelFor(message), message, { error: message.type === 'error' });
  handlers[message.type]?.(message);
  render();
}

const handlers = {
  welcome(message) {
    state.you = message.you;
    state.room = message.room;
    state.status = message.status;
    state.members = new Map(message.members.map((member) => [member.id, member]));
    startCountdown(message.room.sealsAt);
  },
  admission_request({ member }) {
    state.pending.set(member.id, member);
  },
  admitted({ member }) {
    if (member.id === state.you?.id) {
      state.you = member;
      state.status = member.status;
      return;
    }
    state.pending.delete(member.id);
    state.members.set(member.id, member);
  },
  denied({ member }) {
    if (member.id === state.you?.id) {
      state.you = member;
      state.status = member.status;
      showNotice('The room\'s admin denied you.');
      return;
    }
    state.pending.delete(member.id);
  },
  connect_to_peer({ peer, peerEpoch, offerer, polite }) {
    state.peers.set(peer.id, { peer, peerEpoch, offerer, polite });
    state.members.set(peer.id, peer);
  },
  peer_left({ member, epoch }) {
    state.pending.delete(member);
    if ((state.peers.get(member)?.peerEpoch ?? Infinity) <= epoch) state.peers.delete(member);
    const view = state.members.get(member);
    if (view && view.epoch <= epoch) state.members.set(member, { ...view, online: false });
  },
  room_sealed() {
    state.sealsAt = Math.min(state.sealsAt, Date.now());
    showNotice('The room sealed: its join window closed and the server left the scene.', 'info');
  },
  error(message) {
    showNotice(`Server error ${message.code}: ${message.message}${message.reference ? ` (reference ${message.reference})` : ''}`);
  },
};

function onClose(socket, event) {
  const reason = `code ${event.code}${event.reason ? `: ${event.reason}` : ''}`;
  log('info', `WebSocket closed (${reason})`, undefined, { error: event.code !== 1000 });
  if (socket !== state.socket) return;
  stopSocket();
  setSocketState(`closed (${reason})`);
  if (event.code === 1006 && !state.you) {
    showNotice('The WebSocket could not be opened: the ticket may be invalid, expired or already used.');
  }
  render();
}

function setSocketState(text) {
  $('socketState').textContent = text;
}

function startCountdown(sealsAt) {
  clearInterval(state.countdownTimer);
  state.sealsAt = Date.parse(sealsAt);
  const update = () => {
    const left = state.sealsAt - Date.now();
    $('countdown').textContent = left > 0 ? formatDuration(left) : 'sealed';
    if (left <= 0) clearInterval(state.countdownTimer);
  };
  update();
  state.countdownTimer = setInterval(update, 1000);
}

// ---------------------------------------------------------------- actions

function decide(type, memberId) {
  send({ type, member: memberId });
}

function sendTestSignal(event) {
  event.preventDefault();
  const link = state.peers.get($('peerSelect').value);
  if (!link) return showNotice('Choose a connected peer first.');
  const message = { type: 'signal', to: link.peer.id, toEpoch: link.peerEpoch, description: { type: 'offer', sdp: DUMMY_SDP } };
  if ($('includeCandidate').checked) message.candidates = [DUMMY_CANDIDATE];
  send(message);
}

function leave() {
  send({ type: 'leave' });
}

async function copyShareLink() {
  try {
    await navigator.clipboard.writeText($('shareLink').href);
    showNotice('Link copied.', 'info');
  } catch {
    showNotice('Copying is not allowed here; copy the link by hand.');
  }
}

// ---------------------------------------------------------------- rendering

function memberItem(member, { isYou = false } = {}) {
  return el('li', { class: 'member', dataset: { memberId: member.id, status: member.status } },
    el('span', { class: `dot ${member.online ? 'online' : 'offline'}`, 'aria-hidden': 'true' }),
    el('span', { class: 'name' }, member.displayName),
    member.verified ? tick() : null,
    member.admin ? el('span', { class: 'badge admin' }, 'admin') : null,
    isYou ? el('span', { class: 'badge you' }, 'you') : null,
    el('span', { class: `status ${member.status}` }, member.status),
    el('span', { class: 'meta' }, `${member.online ? 'online' : 'offline'} · epoch ${member.epoch}`));
}

function pendingItem(member) {
  return el('li', { class: 'member', dataset: { memberId: member.id } },
    el('span', { class: 'name' }, member.displayName),
    member.verified ? tick() : null,
    el('code', { class: 'meta' }, member.id),
    el('span', { class: 'actions' },
      el('button', { type: 'button', class: 'small approve', 'aria-label': `Approve ${member.displayName}`, onclick: () => decide('admit', member.id) }, 'Approve'),
      el('button', { type: 'button', class: 'small danger deny', 'aria-label': `Deny ${member.displayName}`, onclick: () => decide('deny', member.id) }, 'Deny')));
}

function render() {
  const { ticket } = state;
  const open = state.socket?.readyState === WebSocket.OPEN;
  for (const id of ['connectionCard', 'membersCard', 'signalCard']) $(id).hidden = !ticket;
  if (!ticket) return;

  $('currentRoom').textContent = state.room?.id ?? ticket.room;
  $('memberId').textContent = state.you?.id ?? ticket.member;
  const status = state.status ?? 'connecting';
  $('memberStatus').replaceChildren(el('span', {},
    el('span', { class: `status ${status}` }, status),
    ticket.admin ? el('span', { class: 'badge admin' }, 'admin') : null,
    status === 'pending' ? el('span', { class: 'muted' }, 'waiting for the admin to admit you') : null));
  $('ping').disabled = !open;
  $('leave').disabled = !open;

  const members = $('members');
  members.replaceChildren();
  if (state.you) members.append(memberItem(state.you, { isYou: true }));
  for (const member of state.members.values()) members.append(memberItem(member));

  $('pendingSection').hidden = !ticket.admin;
  $('pending').replaceChildren(...[...state.pending.values()].map(pendingItem));
  $('pendingEmpty').hidden = state.pending.size > 0;

  const select = $('peerSelect');
  const chosen = select.value;
  select.replaceChildren(...[...state.peers.values()].map(({ peer, peerEpoch, offerer, polite }) =>
    el('option', { value: peer.id }, `${peer.displayName} · epoch ${peerEpoch} · ${offerer ? 'you offer' : 'they offer'}${polite ? ', polite' : ''}`)));
  if (state.peers.has(chosen)) select.value = chosen;
  $('noPeers').hidden = state.peers.size > 0;
  select.disabled = state.peers.size === 0;
  $('sendSignal').disabled = !open || state.peers.size === 0;
}

// ---------------------------------------------------------------- start

$('signInForm').addEventListener('submit', signIn);
$('signOut').addEventListener('click', signOut);
$('createRoom').addEventListener('click', createRoom);
$('joinForm').addEventListener('submit', joinRoom);
$('copyLink').addEventListener('click', copyShareLink);
$('signalForm').addEventListener('submit', sendTestSignal);
$('ping').addEventListener('click', () => send({ type: 'ping' }));
$('leave').addEventListener('click', leave);
$('clearLog').addEventListener('click', () => $('log').replaceChildren());

const roomFromUrl = new URLSearchParams(location.search).get('room');
if (roomFromUrl) $('roomId').value = roomFromUrl;
restoreSession();
