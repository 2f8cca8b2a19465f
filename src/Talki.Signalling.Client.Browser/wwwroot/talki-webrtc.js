// Talki browser adapter: RTCPeerConnection, getUserMedia and <video> attachment for Blazor (JS interop).
// Every operation returns a JSON string {seq, signalingState, connectionState, iceGatheringState, localV, remoteV, error}
// so that .NET always sees the state as it is after the operation. Events go back to .NET as JSON too.
// localV and remoteV are the versions of the two descriptions, not their text: .NET reads a description (description())
// only when it needs one whose version it lacks. A snapshot that carried both SDPs was about 13 KB of JSON, sent with
// every event and operation of every link and parsed by .NET's WebAssembly interpreter, which mostly discarded it.

const peers = new Map(); // id -> entry
const remoteStreams = new Map(); // "member/epoch" -> MediaStream
const remoteVideos = new Map(); // "member/epoch" -> Set<HTMLVideoElement>
let nextId = 1;
let seq = 0;
let localStream = null;

const key = (peer, epoch) => `${peer}/${epoch}`;

// The version of a link's local or remote description: it moves on whenever the description's type or text changes
// (Chromium adds every gathered candidate to the local description's SDP), so it only grows, as the snapshots' seq does.
function version(entry, side) {
  const d = side === 'remote' ? entry.pc.remoteDescription : entry.pc.localDescription;
  const known = entry[side];
  const type = d ? d.type : null;
  const sdp = d ? (d.sdp ?? '') : null;
  if (known.type !== type || known.sdp !== sdp) {
    known.type = type;
    known.sdp = sdp;
    known.v++;
  }
  return known;
}

function snapshot(entry) {
  const pc = entry.pc;
  return {
    seq: ++seq,
    signalingState: pc.signalingState,
    connectionState: entry.closed ? 'closed' : pc.connectionState,
    iceGatheringState: pc.iceGatheringState,
    localV: version(entry, 'local').v,
    remoteV: version(entry, 'remote').v,
  };
}

function closedSnapshot() {
  // No versions: the descriptions .NET read last stay what it reports once the link is closed.
  return { seq: ++seq, signalingState: 'closed', connectionState: 'closed', iceGatheringState: 'complete' };
}

// Maps a DOMException / RTCError to PeerConnectionErrorKind.
function toError(err, operation) {
  const name = (err && err.name) || 'Error';
  const message = (err && err.message) || String(err);
  let kind = 'OperationError';
  if (name === 'InvalidStateError') {
    kind = 'InvalidState';
  } else if (name === 'InvalidAccessError' || name === 'RTCError' || name === 'SyntaxError' || name === 'TypeError'
    || (err && err.errorDetail === 'sdp-syntax-error')) {
    kind = 'InvalidDescription';
  } else if (name === 'OperationError' && operation === 'setRemoteDescription') {
    // Chromium reports unparsable or rejected SDP as OperationError from setRemoteDescription.
    kind = 'InvalidDescription';
  }
  if (operation === 'addIceCandidate' && kind === 'InvalidDescription') {
    kind = 'OperationError';
  }
  return { kind, name, message };
}

function result(entry, error) {
  const state = entry ? snapshot(entry) : closedSnapshot();
  state.error = error ?? null;
  return JSON.stringify(state);
}

function live(id) {
  const entry = peers.get(id);
  return entry && !entry.closed ? entry : null;
}

const notOpen = { kind: 'InvalidState', name: 'InvalidStateError', message: 'The peer connection is closed.' };

// .NET's receiver of the links' events, a function (id, json) bound with [JSImport] (setEventSink) when .NET runs in
// this page: one direct call per event. Without it (a host that is not .NET's browser runtime) events go through
// Blazor's invokeMethodAsync on the link's DotNetObjectReference, whose dispatch (the arguments as JSON, the method found
// by reflection, a completion sent back to JS) took .NET's WebAssembly interpreter longer than handling the event itself.
let eventSink = null;

function setEventSink(sink) {
  eventSink = typeof sink === 'function' ? sink : null;
}

function emit(entry, kind, extra) {
  if (entry.closed) {
    return;
  }
  const json = JSON.stringify(Object.assign(snapshot(entry), extra || {}, { kind }));
  if (eventSink) {
    try {
      eventSink(entry.id, json);
    } catch (err) {
      // .NET handles and logs its own failures; a throw here means the runtime is gone with the page.
      console.debug('talki-webrtc: an event was not delivered', err);
    }
    return;
  }
  if (entry.ref) {
    entry.ref.invokeMethodAsync('OnEvent', json).catch(() => { });
  }
}

function wireChannel(entry, channel) {
  entry.channels.set(channel.label, channel);
  const opened = () => emit(entry, 'channelopen', { label: channel.label });
  channel.addEventListener('open', opened);
  channel.addEventListener('close', () => emit(entry, 'channelclose', { label: channel.label }));
  channel.addEventListener('message', ev => {
    if (typeof ev.data === 'string') {
      emit(entry, 'message', { label: channel.label, text: ev.data });
    }
  });
  if (channel.readyState === 'open') {
    opened();
  }
}

function addLocalTracks(entry) {
  if (!localStream) {
    return;
  }
  const senders = entry.pc.getSenders().map(s => s.track).filter(t => t);
  for (const track of localStream.getTracks()) {
    if (!senders.includes(track)) {
      entry.pc.addTrack(track, localStream);
    }
  }
}

function refreshRemoteVideos(k) {
  const stream = remoteStreams.get(k);
  for (const video of remoteVideos.get(k) ?? []) {
    if (video.isConnected && video.srcObject !== stream) {
      video.srcObject = stream;
    }
  }
}

/** Creates a peer connection; returns its id. */
export function createPeer(ref, iceServersJson, peer, epoch, iceTransportPolicy) {
  // max-bundle: every member runs this adapter, so all media and data share one transport from the first offer on, and
  // the offerer gathers candidates for that one transport only (W3C webrtc-pc, RTCBundlePolicy "max-bundle"; the default
  // "balanced" gathers for each media kind until the answer accepts BUNDLE), half the candidates to signal.
  const pc = new RTCPeerConnection({ iceServers: JSON.parse(iceServersJson || '[]'), iceTransportPolicy: iceTransportPolicy === 'relay' ? 'relay' : 'all', bundlePolicy: 'max-bundle' });
  const id = nextId++;
  const entry = {
    id, pc, ref, peer, epoch, closed: false, channels: new Map(), connectedAt: null,
    local: { v: 0, type: null, sdp: null }, remote: { v: 0, type: null, sdp: null },
  };
  peers.set(id, entry);
  if (localStream) {
    addLocalTracks(entry);
  }
  // Without local media, receive-only transceivers are added when this side makes an offer (see setLocalDescription),
  // not here: on the answering side they would match none of the offer's m-lines and cost a second negotiation per link.
  pc.addEventListener('negotiationneeded', () => emit(entry, 'negotiationneeded'));
  pc.addEventListener('icecandidate', ev => {
    const c = ev.candidate;
    emit(entry, 'icecandidate', {
      candidate: c ? c.candidate : '',
      sdpMid: c ? c.sdpMid : null,
      sdpMLineIndex: c ? c.sdpMLineIndex : null,
      usernameFragment: c ? c.usernameFragment : null,
    });
  });
  // The end of gathering: icegatheringstatechange to 'complete' and the null candidate above (the W3C order is the state
  // change first, https://w3c.github.io/webrtc-pc/#update-ice-gathering-state; .NET holds a new local description until
  // one of them, https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/icegatheringstatechange_event).
  pc.addEventListener('icegatheringstatechange', () => emit(entry, 'icegatheringstatechange'));
  pc.addEventListener('signalingstatechange', () => emit(entry, 'signalingstatechange'));
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'connected' && entry.connectedAt === null) {
      entry.connectedAt = Date.now();
    }
    emit(entry, 'connectionstatechange');
  });
  pc.addEventListener('datachannel', ev => wireChannel(entry, ev.channel));
  pc.addEventListener('track', ev => {
    const k = key(peer, epoch);
    let stream = remoteStreams.get(k);
    if (!stream) {
      stream = new MediaStream();
      remoteStreams.set(k, stream);
    }
    if (!stream.getTracks().includes(ev.track)) {
      stream.addTrack(ev.track);
    }
    ev.track.addEventListener('unmute', () => refreshRemoteVideos(k));
    refreshRemoteVideos(k);
    emit(entry, 'track', { trackKind: ev.track.kind, peer, epoch });
  });
  return id;
}

/** Reads the current state. */
export function state(id) {
  return result(live(id), live(id) ? null : notOpen);
}

/**
 * Reads the 'local' or 'remote' description with its version, as three parts on one string: "version\ntype\nsdp" (type
 * and sdp empty when there is none); null once closed. Not JSON: .NET's WebAssembly interpreter took about 4 ms to parse
 * an SDP out of JSON ([JSImport] passes this string as it is).
 */
export function description(id, side) {
  const entry = live(id);
  if (!entry) {
    return null;
  }
  const known = version(entry, side === 'remote' ? 'remote' : 'local');
  return `${known.v}\n${known.type ?? ''}\n${known.sdp ?? ''}`;
}

/** setLocalDescription() without an argument (JSEP implicit offer or answer). */
export async function setLocalDescription(id) {
  const entry = live(id);
  if (!entry) {
    return result(null, notOpen);
  }
  try {
    const pc = entry.pc;
    if (!localStream && (pc.signalingState === 'stable' || pc.signalingState === 'have-local-offer')) {
      // An offer from a side without media still asks for the peer's audio and video.
      for (const kind of ['audio', 'video']) {
        if (!pc.getTransceivers().some(t => t.receiver.track.kind === kind)) {
          pc.addTransceiver(kind, { direction: 'recvonly' });
        }
      }
    }
    await pc.setLocalDescription();
    return result(entry, null);
  } catch (err) {
    return result(live(id), toError(err, 'setLocalDescription'));
  }
}

/** Applies a remote description (an offer in have-local-offer rolls back implicitly). */
export async function setRemoteDescription(id, type, sdp) {
  const entry = live(id);
  if (!entry) {
    return result(null, notOpen);
  }
  try {
    await entry.pc.setRemoteDescription(type === 'rollback' ? { type } : { type, sdp: sdp ?? '' });
    return result(entry, null);
  } catch (err) {
    return result(live(id), toError(err, 'setRemoteDescription'));
  }
}

/** Adds a remote ICE candidate (an empty candidate line ends the remote candidates). */
export async function addIceCandidate(id, candidate, sdpMid, sdpMLineIndex, usernameFragment) {
  const entry = live(id);
  if (!entry) {
    return result(null, notOpen);
  }
  try {
    const init = { candidate: candidate ?? '' };
    if (sdpMid !== null && sdpMid !== undefined) init.sdpMid = sdpMid;
    if (sdpMLineIndex !== null && sdpMLineIndex !== undefined) init.sdpMLineIndex = sdpMLineIndex;
    if (usernameFragment !== null && usernameFragment !== undefined) init.usernameFragment = usernameFragment;
    await entry.pc.addIceCandidate(init);
    return result(entry, null);
  } catch (err) {
    return result(live(id), toError(err, 'addIceCandidate'));
  }
}

/** restartIce(); negotiationneeded follows. */
export function restartIce(id) {
  const entry = live(id);
  if (entry) {
    entry.pc.restartIce();
  }
}

/** Creates a data channel; returns its readyState. */
export function createDataChannel(id, label) {
  const entry = live(id);
  if (!entry) {
    return 'closed';
  }
  const channel = entry.pc.createDataChannel(label);
  wireChannel(entry, channel);
  return channel.readyState;
}

/** Sends text on a data channel; returns null or an error. */
export function send(id, label, text) {
  const entry = live(id);
  const channel = entry && entry.channels.get(label);
  if (!channel || channel.readyState !== 'open') {
    return JSON.stringify({ kind: 'InvalidState', name: 'InvalidStateError', message: `The data channel '${label}' is not open.` });
  }
  try {
    channel.send(text);
    return null;
  } catch (err) {
    return JSON.stringify(toError(err, 'send'));
  }
}

/** Closes a peer connection and forgets its remote stream. */
export function close(id) {
  const entry = peers.get(id);
  if (!entry || entry.closed) {
    return;
  }
  entry.closed = true;
  try {
    entry.pc.close();
  } catch {
    // already closed
  }
  peers.delete(id);
  const k = key(entry.peer, entry.epoch);
  if (![...peers.values()].some(e => key(e.peer, e.epoch) === k)) {
    const stream = remoteStreams.get(k);
    remoteStreams.delete(k);
    for (const video of remoteVideos.get(k) ?? []) {
      if (video.srcObject === stream) video.srcObject = null;
    }
    remoteVideos.delete(k);
  }
}

// ---- media ----

async function tryGetUserMedia(constraints) {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints), error: null };
  } catch (err) {
    return { stream: null, error: (err && err.name) || String(err) };
  }
}

/** Starts camera and microphone, falling back to audio only, then to no media. Returns {status, error}. */
export async function startLocalMedia() {
  if (localStream) {
    return JSON.stringify({ status: statusOf(localStream), error: null });
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return JSON.stringify({ status: 'NoMedia', error: 'NotSupportedError' });
  }
  let { stream, error } = await tryGetUserMedia({ video: true, audio: true });
  if (!stream) {
    const audio = await tryGetUserMedia({ audio: true });
    stream = audio.stream;
  }
  if (!stream) {
    return JSON.stringify({ status: 'NoMedia', error });
  }
  localStream = stream;
  for (const entry of peers.values()) {
    if (!entry.closed) addLocalTracks(entry);
  }
  return JSON.stringify({ status: statusOf(stream), error });
}

function statusOf(stream) {
  return stream.getVideoTracks().length > 0 ? 'AudioAndVideo' : stream.getAudioTracks().length > 0 ? 'AudioOnly' : 'NoMedia';
}

function prepareVideo(video, muted) {
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute('playsinline', '');
  video.muted = muted;
}

/** Shows the local stream in a <video> (muted). Returns whether there is a local stream. */
export function attachLocal(video) {
  if (!video) return false;
  prepareVideo(video, true);
  if (video.srcObject !== localStream) {
    video.srcObject = localStream;
  }
  video.play?.().catch(() => { });
  return localStream !== null;
}

/** Shows a remote member's stream in a <video>; keeps it attached when tracks arrive later. */
export function attachRemote(video, peer, epoch) {
  if (!video) return false;
  prepareVideo(video, false);
  const k = key(peer, epoch);
  for (const [otherKey, set] of remoteVideos) {
    if (otherKey !== k) set.delete(video);
  }
  let set = remoteVideos.get(k);
  if (!set) {
    set = new Set();
    remoteVideos.set(k, set);
  }
  set.add(video);
  const stream = remoteStreams.get(k) ?? null;
  if (video.srcObject !== stream) {
    video.srcObject = stream;
  }
  video.play?.().catch(() => { });
  return stream !== null;
}

/** Enables or disables the local tracks of one kind ('audio' | 'video'). */
export function setTrackEnabled(kind, enabled) {
  if (!localStream) return false;
  const tracks = kind === 'audio' ? localStream.getAudioTracks() : localStream.getVideoTracks();
  for (const t of tracks) t.enabled = enabled;
  return tracks.length > 0;
}

/** Stops the local media and closes every peer connection. */
export function stopAll() {
  for (const id of [...peers.keys()]) close(id);
  if (localStream) {
    for (const t of localStream.getTracks()) t.stop();
    localStream = null;
  }
  remoteStreams.clear();
  remoteVideos.clear();
}

// ---- diagnostics hook for end-to-end tests ----

// `links()` reads each connection's inbound RTP counters with getStats(); `links({ stats: false })` leaves them at 0 and
// only reads states. getStats() is not free (Chromium gathers the report across its threads), so a caller that polls
// for states while links are being set up should not pay for it on every connection of every page.
async function linkStats(entry, stats) {
  let bytesReceived = 0;
  let videoBytesReceived = 0;
  let framesDecoded = 0;
  try {
    const report = stats ? await entry.pc.getStats() : new Map();
    report.forEach(s => {
      if (s.type === 'inbound-rtp') {
        bytesReceived += s.bytesReceived ?? 0;
        if (s.kind === 'video' || s.mediaType === 'video') {
          videoBytesReceived += s.bytesReceived ?? 0;
          framesDecoded += s.framesDecoded ?? 0;
        }
      }
    });
  } catch {
    // closed meanwhile
  }
  return {
    peer: entry.peer,
    epoch: entry.epoch,
    connectionState: entry.pc.connectionState,
    iceConnectionState: entry.pc.iceConnectionState,
    signalingState: entry.pc.signalingState,
    bytesReceived,
    videoBytesReceived,
    framesDecoded,
    connectedAt: entry.connectedAt,
  };
}

window.talkiWebRtc = {
  links: ({ stats = true } = {}) => Promise.all([...peers.values()].filter(e => !e.closed).map(e => linkStats(e, stats))),
  restartIce: () => {
    let count = 0;
    for (const entry of peers.values()) {
      if (!entry.closed && entry.pc.connectionState !== 'closed') {
        entry.pc.restartIce();
        count++;
      }
    }
    return count;
  },
};

// The functions .NET binds with [JSImport] (JSImportPeerCalls): strings pass as they are, where Blazor's interop encodes
// them as JSON. Published once this module is loaded; Blazor's import of it comes first.
// createPeerDirect: a link whose events go to the event function (setEventSink), so it needs no DotNetObjectReference.
const createPeerDirect = (iceServersJson, peer, epoch, iceTransportPolicy) => createPeer(null, iceServersJson, peer, epoch, iceTransportPolicy);
globalThis.__talkiWebRtc = {
  setLocalDescription, setRemoteDescription, addIceCandidate, description, setEventSink,
  createPeerDirect, createDataChannel, restartIce, close,
};
