// The lobby: pick a room and a name, chat, see who is here and who is typing. Plain JS served
// as is. Everything people typed is rendered with textContent, never as HTML.
/* global fetch, URLSearchParams, ResizeObserver */
'use strict';

(() => {
  /** Channels' group-name rules, as the server checks them. */
  const ROOM = /^[A-Za-z0-9._-]{1,99}$/;
  /** 1–32 printable characters, as the server checks them. */
  const NAME = /^[^\p{C}]{1,32}$/u;
  const DEFAULT_ROOM = 'test';
  const NAME_KEY = 'lobby.name';
  /** Per room, this tab's unacknowledged messages: a reload still sends them, with their ids. */
  const OUTBOX_KEY = 'lobby.outbox:';
  /** Reconnect delays: doubling from `baseMs`, capped at `maxMs`, half of each one random. */
  const BACKOFF = { baseMs: 500, maxMs: 15000 };
  /** A handshake that has not opened by then is given up and retried. */
  const OPEN_TIMEOUT_MS = 10000;
  /** Errors after which retrying the same URL cannot help; the user has to change it. */
  const FATAL = new Set(['invalid_room', 'invalid_name']);
  const ROOMS_REFRESH_MS = 15000;
  /** A presence frame refreshes the rooms list this soon after it (once per burst of them). */
  const ROOMS_SOON_MS = 300;
  /** Consecutive messages of one person closer than this share one header. */
  const GROUP_MS = 5 * 60 * 1000;
  /** While the person types, one `{"type":"typing"}` per this long at most. */
  const TYPING_EVERY_MS = 3000;
  /** "… is typing" goes away this long after that person's last typing frame. */
  const TYPING_SHOWN_MS = 5000;
  /** Unacknowledged messages on the wire at once: a long outbox stays under the rate limit. */
  const IN_FLIGHT = { count: 8, chars: 64 * 1024 };
  /** After a `rate_limited` error (it names no message), what is unanswered this long failed. */
  const RATE_LIMITED_WAIT_MS = 2000;
  /** An echo of the user's own name that came before the ack waits this long to be matched. */
  const ECHO_WAIT_MS = 3000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    join: $('join'),
    connection: $('connection'),
    people: $('people'),
    peopleMore: $('people-more'),
    peopleCount: $('people-count'),
    rooms: $('rooms'),
    roomsPanel: $('rooms-panel'),
    roomList: $('room-list'),
    roomName: $('room-name'),
    roomUsers: $('room-users'),
    scroller: $('scroller'),
    messages: $('messages'),
    empty: $('empty'),
    typing: $('typing'),
    notice: $('notice'),
    form: $('form'),
  };

  const state = {
    room: DEFAULT_ROOM,
    /** The name the person chose ('' for a guest name from the server). */
    name: '',
    /** The name the server says we chat as; kept across reconnects so a guest stays the same. */
    user: '',
    socket: null,
    /** The socket has had its history: what is sent on it from now on is in order after it. */
    joined: false,
    /** Failed attempts since the socket was last live; drives the backoff. */
    attempt: 0,
    retryTimer: 0,
    openTimer: 0,
    /** The newest chat id seen in this room: reconnects resume after it with `since`. */
    lastId: '',
    seen: new Set(),
    /** The error code of the last error frame on this socket, to tell why it closed. */
    lastError: '',
    historyLoaded: false,
    /** The server answered `unknown_type` to a typing frame: it has no typing event. */
    typingOff: false,
  };

  /**
   * This page's own messages until the server acknowledges them, oldest first:
   * `{id, message, ts, status: 'queued' | 'sent' | 'failed', error, element, socket}`. `queued`
   * waits for a live socket, `sent` for its ack; each is resent with its id after a reconnect.
   */
  const outbox = [];
  /** Acknowledged messages whose chat frame has not come yet: its id → the element shown. */
  const acked = new Map();
  /** Chat frames under our own name that came before any ack matched them: id → frame. */
  const echoes = new Map();

  // ---------------------------------------------------------------- ids and time

  function splitId(id) {
    const dash = id.indexOf('-');
    return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
  }

  /** Orders `<ms>-<seq>` ids: by ms, then seq, numerically. */
  function compareIds(a, b) {
    const [aMs, aSeq] = splitId(a);
    const [bMs, bSeq] = splitId(b);
    return aMs !== bMs ? aMs - bMs : aSeq - bSeq;
  }

  const isId = (id) => typeof id === 'string' && /^\d{1,16}-\d{1,16}$/.test(id);

  /** This page's random part of its message ids, and a counter: unique across tabs and reloads. */
  const pageId = Array.from(window.crypto.getRandomValues(new Uint8Array(9)), (byte) =>
    byte.toString(16).padStart(2, '0'),
  ).join('');
  let sentCount = 0;
  const newMessageId = () => `lobby-${pageId}-${(sentCount++).toString(36)}`;

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const dayTimeFormat = new Intl.DateTimeFormat(undefined, {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

  function shortTime(date) {
    const today = new Date();
    return date.toDateString() === today.toDateString()
      ? timeFormat.format(date)
      : dayTimeFormat.format(date);
  }

  // ---------------------------------------------------------------- avatars

  /** OKLCH hues far enough apart to tell at a glance; lobby.css sets lightness and chroma. */
  const HUES = [25, 55, 85, 115, 145, 175, 205, 235, 265, 295, 325, 355];
  /** Each name's hue on this page, once given: a person keeps their colour while the page lives. */
  const hues = new Map();

  /** A stable preferred hue per name (FNV-1a, then mixed: its low bits alone repeat). */
  function preferredHue(name) {
    let hash = 2166136261;
    for (const char of name) hash = Math.imul(hash ^ char.codePointAt(0), 16777619);
    hash ^= hash >>> 16;
    hash = Math.imul(hash, 0x85ebca6b);
    hash ^= hash >>> 13;
    return (hash >>> 0) % HUES.length;
  }

  /**
   * A name's hue: its preferred one, unless someone this page shows already has it; then a free
   * one far from it (or, with every hue taken, the least used). So different
   * people here look different, and the same person mostly looks the same on every page.
   */
  function hueOf(name) {
    let hue = hues.get(name);
    if (hue !== undefined) return hue;
    const uses = new Array(HUES.length).fill(0);
    for (const taken of hues.values()) uses[HUES.indexOf(taken)]++;
    const start = preferredHue(name);
    let best = start;
    for (let step = 0; step < HUES.length; step++) {
      // Five steps of twelve: the next hue tried is far from the taken one, and all are tried.
      const index = (start + step * 5) % HUES.length;
      if (uses[index] < uses[best]) best = index;
      if (uses[index] === 0) break;
    }
    hue = HUES[best];
    hues.set(name, hue);
    return hue;
  }

  function avatar(name) {
    const span = document.createElement('span');
    span.className = 'avatar';
    span.setAttribute('aria-hidden', 'true');
    span.textContent = [...name][0]?.toUpperCase() ?? '?';
    span.style.setProperty('--hue', String(hueOf(name)));
    return span;
  }

  // ---------------------------------------------------------------- rendering

  function setConnection(connection, detail) {
    ui.connection.dataset.state = connection;
    document.body.dataset.connection = connection;
    const labels = {
      connecting: 'Connecting…',
      live: 'Live',
      reconnecting: 'Reconnecting…',
      offline: 'Offline',
    };
    ui.connection.textContent = labels[connection];
    ui.connection.title =
      detail ??
      (connection === 'reconnecting' ? 'Lost the connection; click to retry now' : 'Connection');
  }

  let noticeTimer = 0;
  function showNotice(text, { sticky = false } = {}) {
    clearTimeout(noticeTimer);
    ui.notice.textContent = text;
    ui.notice.hidden = false;
    if (!sticky) noticeTimer = setTimeout(() => (ui.notice.hidden = true), 6000);
  }

  function hideNotice() {
    clearTimeout(noticeTimer);
    ui.notice.hidden = true;
  }

  function nearBottom() {
    const { scrollTop, scrollHeight, clientHeight } = ui.scroller;
    return scrollHeight - scrollTop - clientHeight < 80;
  }

  function scrollToBottom() {
    ui.scroller.scrollTop = ui.scroller.scrollHeight;
  }

  function updateEmpty() {
    ui.empty.hidden = !state.historyLoaded || ui.messages.childElementCount > 0;
  }

  function timeElement(ts) {
    const date = new Date(ts);
    const time = document.createElement('time');
    time.dateTime = date.toISOString();
    time.title = fullFormat.format(date);
    time.textContent = shortTime(date);
    return time;
  }

  /** One chat frame as a message element; every user-given string goes in as text. */
  function messageElement(frame) {
    const item = document.createElement('div');
    item.className = 'msg';
    const user = typeof frame.user === 'string' ? frame.user : '';
    if (user && user === state.user) item.classList.add('mine');
    if (isId(frame.id)) item.dataset.id = frame.id;
    item.dataset.user = user;
    if (typeof frame.ts === 'number') item.dataset.ts = String(frame.ts);

    if (user) item.append(avatar(user));
    const body = document.createElement('div');
    body.className = 'body';
    if (user || typeof frame.ts === 'number') {
      const meta = document.createElement('div');
      meta.className = 'meta';
      if (user) {
        const who = document.createElement('span');
        who.className = 'who';
        who.textContent = user;
        meta.append(who);
      }
      if (typeof frame.ts === 'number') meta.append(timeElement(frame.ts));
      body.append(meta);
    }
    const text = document.createElement('p');
    text.textContent = String(frame.message);
    body.append(text);
    item.append(body);
    return item;
  }

  /** Marks `item` as a continuation when the message before it is by the same person, shortly before. */
  function groupWithPrevious(item) {
    const previous = item.previousElementSibling;
    const continues =
      previous !== null &&
      item.dataset.user !== '' &&
      previous.dataset.user === item.dataset.user &&
      Number(item.dataset.ts) - Number(previous.dataset.ts) < GROUP_MS;
    item.classList.toggle('cont', continues);
  }

  /**
   * Puts `item` (a confirmed message with chat id `id`, or none) in id order among the confirmed
   * messages, which all come before the outbox's; moves it only when it is out of place, since a
   * move is announced again.
   */
  function place(item, id) {
    let before = ui.messages.querySelector('.msg[data-outbox]');
    if (before === item) before = item.nextElementSibling;
    if (id) {
      let node = before ? before.previousElementSibling : ui.messages.lastElementChild;
      for (; node; node = node.previousElementSibling) {
        if (node === item) continue;
        if (!node.dataset.id || compareIds(node.dataset.id, id) < 0) break;
        before = node;
      }
    }
    const next = item.nextElementSibling;
    if (item.parentNode !== ui.messages || (next !== before && before !== item)) {
      const oldNext = item.parentNode === ui.messages ? next : null;
      ui.messages.insertBefore(item, before);
      if (oldNext) groupWithPrevious(oldNext);
    }
    groupWithPrevious(item);
    if (item.nextElementSibling) groupWithPrevious(item.nextElementSibling);
  }

  /**
   * Adds a chat frame once (deduplicated by id), in id order. `live`: it came as a `chat` frame,
   * so one under our own name may be the echo of a message whose ack has not come yet.
   */
  function addMessage(frame, { live = false } = {}) {
    if (typeof frame.message !== 'string') return;
    const id = isId(frame.id) ? frame.id : '';
    const own = id ? acked.get(id) : undefined;
    if (id) {
      if (state.seen.has(id) && !own) return;
      if (!own && live && frame.user === state.user && inFlight().length > 0) {
        // Maybe one of ours whose ack is on its way: shown when the ack says which (or not ours).
        waitForAck(frame);
        return;
      }
      state.seen.add(id);
      acked.delete(id);
      if (!state.lastId || compareIds(id, state.lastId) > 0) state.lastId = id;
    }
    if (typeof frame.user === 'string') stoppedTyping(frame.user);
    const stick = nearBottom() || frame.user === state.user;
    const item = own ? confirmed(own, frame) : messageElement(frame);
    place(item, id);
    updateEmpty();
    if (stick) scrollToBottom();
  }

  /** Turns our pending `item` into the message the server stored, in place: no second entry. */
  function confirmed(item, frame) {
    delete item.dataset.outbox;
    item.classList.remove('pending', 'failed');
    item.querySelector('.status')?.remove();
    if (isId(frame.id)) item.dataset.id = frame.id;
    if (typeof frame.ts === 'number') {
      item.dataset.ts = String(frame.ts);
      const time = item.querySelector('time');
      const fresh = timeElement(frame.ts);
      if (!time) item.querySelector('.meta')?.append(fresh);
      else if (time.textContent !== fresh.textContent) time.replaceWith(fresh);
      else time.dateTime = fresh.dateTime;
    }
    if (typeof frame.user === 'string' && frame.user && item.dataset.user !== frame.user) {
      item.dataset.user = frame.user;
      const who = item.querySelector('.who');
      if (who) who.textContent = frame.user;
    }
    return item;
  }

  function renderPeople(users) {
    ui.people.replaceChildren(
      ...users.map((name) => {
        const li = document.createElement('li');
        li.append(avatar(name));
        const label = document.createElement('span');
        label.className = 'name';
        label.textContent = name;
        li.append(label);
        if (name === state.user) {
          li.classList.add('me');
          const you = document.createElement('span');
          you.className = 'you';
          you.textContent = 'you';
          li.append(you);
        }
        return li;
      }),
    );
    ui.peopleCount.textContent = String(users.length);
    ui.roomUsers.textContent = users.length === 1 ? '1 person here' : `${users.length} people here`;
    fitPeople();
  }

  /**
   * On a phone "Here now" is one row: the chips that do not fit whole are hidden, and a "+N"
   * button says how many and unfolds the list. On a wide screen the list is a column and all fit.
   */
  function fitPeople() {
    const expanded = ui.people.classList.contains('expanded');
    const width = ui.people.clientWidth;
    let hidden = 0;
    for (const li of ui.people.children) {
      // `clipped` hides without moving anything, so every chip is measured where it is.
      const out = !expanded && li.offsetLeft + li.offsetWidth > width + 1;
      li.classList.toggle('clipped', out);
      if (out) hidden++;
    }
    const total = ui.people.childElementCount;
    ui.peopleMore.hidden = !expanded && hidden === 0;
    ui.peopleMore.textContent = expanded ? 'Fewer' : `+${hidden}`;
    ui.peopleMore.setAttribute('aria-expanded', String(expanded));
    ui.peopleMore.setAttribute(
      'aria-label',
      expanded ? 'Show one row of people' : `Show all ${total} people here, ${hidden} more`,
    );
  }

  ui.peopleMore.addEventListener('click', () => {
    ui.people.classList.toggle('expanded');
    fitPeople();
  });
  if (typeof ResizeObserver === 'function') {
    // In the next frame: fitting changes the row's width, which must not re-enter this frame.
    new ResizeObserver(() => window.requestAnimationFrame(fitPeople)).observe(ui.people);
  }

  function renderRooms(rooms) {
    const list = rooms.some((entry) => entry.room === state.room)
      ? rooms
      : [{ room: state.room, members: 0 }, ...rooms];
    ui.rooms.replaceChildren(
      ...list.map(({ room, members }) => {
        const li = document.createElement('li');
        const link = document.createElement('a');
        link.href = `?room=${encodeURIComponent(room)}`;
        link.dataset.room = room;
        const name = document.createElement('span');
        name.className = 'name';
        name.textContent = `# ${room}`;
        link.append(name);
        if (members > 0) {
          const count = document.createElement('span');
          count.className = 'count';
          count.textContent = String(members);
          count.title = members === 1 ? '1 connection' : `${members} connections`;
          link.append(count);
        }
        if (room === state.room) link.setAttribute('aria-current', 'page');
        li.append(link);
        return li;
      }),
    );
    ui.roomList.replaceChildren(
      ...list.map(({ room }) => {
        const option = document.createElement('option');
        option.value = room;
        return option;
      }),
    );
  }

  // ---------------------------------------------------------------- typing

  /** Who is typing: name → the timer that forgets them. */
  const typists = new Map();
  let typingSentAt = 0;

  function renderTyping() {
    const names = [...typists.keys()];
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length === 3) text = `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
    else if (names.length > 3) text = 'Several people are typing…';
    if (ui.typing.textContent !== text) ui.typing.textContent = text;
  }

  function typing(name) {
    if (!name || name === state.user) return;
    clearTimeout(typists.get(name));
    typists.set(
      name,
      setTimeout(() => stoppedTyping(name), TYPING_SHOWN_MS),
    );
    renderTyping();
  }

  function stoppedTyping(name) {
    if (!typists.has(name)) return;
    clearTimeout(typists.get(name));
    typists.delete(name);
    renderTyping();
  }

  function clearTyping() {
    for (const timer of typists.values()) clearTimeout(timer);
    typists.clear();
    renderTyping();
  }

  /** Tells the room this person is typing: at most once per {@link TYPING_EVERY_MS}. */
  function sendTyping() {
    if (state.typingOff || !isLive()) return;
    const now = Date.now();
    if (now - typingSentAt < TYPING_EVERY_MS) return;
    typingSentAt = now;
    state.socket.send('{"type":"typing"}');
  }

  // ---------------------------------------------------------------- the outbox

  function isLive() {
    return state.joined && state.socket !== null && state.socket.readyState === WebSocket.OPEN;
  }

  const inFlight = () => outbox.filter((entry) => entry.status === 'sent');

  function saveOutbox() {
    const entries = outbox
      .filter((entry) => entry.status !== 'failed')
      .map(({ id, message, ts }) => ({ id, message, ts }));
    try {
      const key = OUTBOX_KEY + state.room;
      if (entries.length === 0) window.sessionStorage.removeItem(key);
      else window.sessionStorage.setItem(key, JSON.stringify({ user: state.user, entries }));
    } catch {
      // Storage may be off or full; the outbox still works for this page.
    }
  }

  /** This room's saved outbox (a reload's), as `{user, entries}`; nothing when there is none. */
  function loadOutbox(room) {
    try {
      const saved = JSON.parse(window.sessionStorage.getItem(OUTBOX_KEY + room) ?? 'null');
      if (!saved || !Array.isArray(saved.entries)) return { user: '', entries: [] };
      const entries = saved.entries.filter(
        (entry) =>
          entry &&
          typeof entry.id === 'string' &&
          typeof entry.message === 'string' &&
          typeof entry.ts === 'number',
      );
      return { user: typeof saved.user === 'string' ? saved.user : '', entries };
    } catch {
      return { user: '', entries: [] };
    }
  }

  /** What a pending message says of itself, seen and heard (the log announces it). */
  function showStatus(entry) {
    const item = entry.element;
    const status = item.querySelector('.status');
    status.replaceChildren();
    item.classList.toggle('pending', entry.status !== 'failed');
    item.classList.toggle('failed', entry.status === 'failed');
    if (entry.status === 'failed') {
      const why = document.createElement('span');
      why.textContent = `Not sent: ${entry.error}`;
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.className = 'link';
      retry.dataset.action = 'retry';
      retry.textContent = 'Retry';
      const discard = document.createElement('button');
      discard.type = 'button';
      discard.className = 'link';
      discard.dataset.action = 'discard';
      discard.textContent = 'Discard';
      status.append(why, ' ', retry, ' ', discard);
    } else {
      status.textContent =
        entry.status === 'sent' || isLive()
          ? 'Sending…'
          : 'Not sent yet: waiting for the connection';
    }
  }

  /** Shows `entry` at the end of the log, pending, as the message it will be. */
  function showPending(entry) {
    const user = state.user || state.name || 'you';
    const item = messageElement({ message: entry.message, user, ts: entry.ts });
    item.classList.add('mine');
    item.dataset.outbox = entry.id;
    const status = document.createElement('span');
    status.className = 'status';
    item.querySelector('.body').append(status);
    entry.element = item;
    ui.messages.append(item);
    groupWithPrevious(item);
    showStatus(entry);
    updateEmpty();
  }

  /** Queues a message the person wrote: shown at once, sent now or once the socket is live. */
  function queue(message) {
    const entry = { id: newMessageId(), message, ts: Date.now(), status: 'queued', error: '' };
    outbox.push(entry);
    showPending(entry);
    scrollToBottom();
    saveOutbox();
    flushOutbox();
  }

  /** Sends queued messages in order, a few unanswered at a time, each with its id. */
  function flushOutbox() {
    if (!isLive()) return;
    const wire = inFlight();
    let count = wire.length;
    let chars = wire.reduce((sum, entry) => sum + entry.message.length, 0);
    for (const entry of outbox) {
      if (entry.status !== 'queued') continue;
      if (
        count > 0 &&
        (count >= IN_FLIGHT.count || chars + entry.message.length > IN_FLIGHT.chars)
      ) {
        break;
      }
      state.socket.send(JSON.stringify({ message: entry.message, id: entry.id }));
      entry.status = 'sent';
      entry.socket = state.socket;
      count++;
      chars += entry.message.length;
      showStatus(entry);
    }
  }

  function remove(entry) {
    const index = outbox.indexOf(entry);
    if (index >= 0) outbox.splice(index, 1);
    saveOutbox();
  }

  /** The server stored one of ours: it becomes that message (or is it, if that already shows). */
  function ack(frame) {
    const entry = outbox.find((candidate) => candidate.id === frame.id);
    if (!entry) return;
    remove(entry);
    const messageId = isId(frame.message_id) ? frame.message_id : '';
    const item = entry.element;
    if (!messageId) {
      confirmed(item, {});
    } else if (echoes.has(messageId)) {
      const echo = echoes.get(messageId);
      echoes.delete(messageId);
      acked.set(messageId, item);
      addMessage(echo);
    } else if (state.seen.has(messageId)) {
      // Its chat frame is on the page already (a resend's history brought it back).
      const next = item.nextElementSibling;
      item.remove();
      if (next) groupWithPrevious(next);
    } else {
      // Stored and sent; its chat frame (and its time) follows.
      acked.set(messageId, item);
      confirmed(item, { id: messageId });
      place(item, messageId);
    }
    settleEchoes();
    flushOutbox();
  }

  /** The server refused one of ours: it shows why, with Retry and Discard. */
  function failed(entry, reason) {
    entry.status = 'failed';
    entry.error = reason;
    entry.socket = null;
    showStatus(entry);
    saveOutbox();
    settleEchoes();
    flushOutbox();
  }

  /** Holds a chat frame under our name until an ack claims it or nothing of ours is in flight. */
  function waitForAck(frame) {
    if (echoes.has(frame.id)) return;
    echoes.set(frame.id, frame);
    setTimeout(() => {
      if (!echoes.delete(frame.id)) return;
      addMessage(frame);
    }, ECHO_WAIT_MS);
  }

  /** Echoes no ack can claim any more (nothing of ours in flight) are someone's: another tab's. */
  function settleEchoes() {
    if (inFlight().length > 0) return;
    const waiting = [...echoes.values()];
    echoes.clear();
    for (const frame of waiting) addMessage(frame);
  }

  ui.messages.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    const item = button?.closest('.msg[data-outbox]');
    const entry = item && outbox.find((candidate) => candidate.element === item);
    if (!entry) return;
    if (button.dataset.action === 'discard') {
      remove(entry);
      const next = item.nextElementSibling;
      item.remove();
      if (next) groupWithPrevious(next);
      updateEmpty();
      ui.form.message.focus();
      return;
    }
    // A new id: the server may remember its answer to the old one.
    remove(entry);
    entry.id = newMessageId();
    item.dataset.outbox = entry.id;
    entry.status = 'queued';
    entry.error = '';
    outbox.push(entry);
    ui.messages.append(item);
    groupWithPrevious(item);
    showStatus(entry);
    saveOutbox();
    flushOutbox();
    ui.form.message.focus();
  });

  // ---------------------------------------------------------------- rooms API

  let roomsTimer = 0;
  let roomsApi = true;
  /** Answers to older requests than the last one rendered are stale: they are dropped. */
  let roomsAsked = 0;
  let roomsShown = 0;
  async function refreshRooms() {
    clearTimeout(roomsTimer);
    if (!roomsApi) return;
    const asked = ++roomsAsked;
    try {
      const response = await fetch('/api/rooms', { headers: { accept: 'application/json' } });
      if (response.status === 404) {
        // The list is turned off (or not served by an app that embeds the chat): say so once
        // and stop asking; the form still joins any room.
        roomsApi = false;
        const off = document.createElement('li');
        off.className = 'empty';
        off.textContent = 'The rooms list is turned off on this server.';
        ui.rooms.replaceChildren(off);
        return;
      }
      if (response.ok) {
        const rooms = await response.json();
        if (Array.isArray(rooms) && asked > roomsShown) {
          roomsShown = asked;
          renderRooms(rooms);
        }
      }
    } catch {
      // The server is away; the connection state already says so.
    }
    if (asked === roomsAsked && document.visibilityState === 'visible') {
      clearTimeout(roomsTimer);
      roomsTimer = setTimeout(refreshRooms, ROOMS_REFRESH_MS);
    }
  }

  /**
   * Refreshes the list soon, once for a burst of presence frames. A throttle, not a debounce that
   * restarts its wait: presence frames a few hundred ms apart would put it off until the poll.
   */
  let roomsSoon = 0;
  function refreshRoomsSoon() {
    if (roomsSoon) return;
    roomsSoon = setTimeout(() => {
      roomsSoon = 0;
      refreshRooms();
    }, ROOMS_SOON_MS);
  }

  // ---------------------------------------------------------------- the socket

  /** The path the page's ChatModule serves, from the page itself (see index.html). */
  function chatPath() {
    const meta = document.querySelector('meta[name="chat-path"]');
    return (meta && meta.getAttribute('content')) || '/ws/socket-server';
  }

  function socketUrl() {
    const params = new URLSearchParams({ room: state.room });
    const name = state.user || state.name;
    if (name) params.set('name', name);
    if (state.lastId) params.set('since', state.lastId);
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${window.location.host}${chatPath()}/?${params}`;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    state.retryTimer = 0;
    if (state.socket) return;
    state.lastError = '';
    state.joined = false;
    setConnection(state.everLive ? 'reconnecting' : 'connecting');
    const socket = new WebSocket(socketUrl());
    state.socket = socket;
    state.openTimer = setTimeout(() => socket.close(), OPEN_TIMEOUT_MS);
    socket.onopen = () => clearTimeout(state.openTimer);
    socket.onmessage = (event) => {
      if (socket !== state.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame !== null && typeof frame === 'object') receive(frame);
    };
    socket.onclose = (event) => {
      clearTimeout(state.openTimer);
      if (socket !== state.socket) return;
      state.socket = null;
      closed(event);
    };
  }

  /** What was on the wire of a socket that is gone goes again, with the same ids, on the next. */
  function requeue() {
    state.joined = false;
    for (const entry of outbox) {
      if (entry.status !== 'sent') continue;
      entry.status = 'queued';
      entry.socket = null;
      showStatus(entry);
    }
    // An echo that waited for an ack that is lost: shown as it is; a resend's ack then finds it.
    const waiting = [...echoes.values()];
    echoes.clear();
    for (const frame of waiting) addMessage(frame);
  }

  /** Closes the socket without reconnecting (switching rooms or names). */
  function disconnect() {
    const socket = state.socket;
    state.socket = null;
    clearTimeout(state.retryTimer);
    clearTimeout(state.openTimer);
    requeue();
    if (socket) socket.close(1000, 'leaving');
  }

  function receive(frame) {
    switch (frame.type) {
      case 'connection_established':
        state.attempt = 0;
        state.everLive = true;
        setConnection('live');
        hideNotice();
        break;
      case 'history':
        if (typeof frame.user === 'string') {
          state.user = frame.user;
          if (!ui.join.name.value && !state.name) ui.join.name.placeholder = frame.user;
        }
        for (const message of Array.isArray(frame.messages) ? frame.messages : []) {
          addMessage(message);
        }
        state.historyLoaded = true;
        state.joined = true;
        updateEmpty();
        scrollToBottom();
        saveOutbox();
        flushOutbox();
        break;
      case 'chat':
        addMessage(frame, { live: true });
        break;
      case 'ack':
        ack(frame);
        break;
      case 'typing':
        typing(typeof frame.user === 'string' ? frame.user : '');
        break;
      case 'presence':
        if (frame.room === undefined || frame.room === state.room) {
          const users = Array.isArray(frame.users) ? frame.users.map(String) : [];
          renderPeople(users);
          // Who left stops typing; a list cut short (`count` has them all) proves nothing.
          if (!(frame.count > users.length)) {
            for (const name of typists.keys()) if (!users.includes(name)) stoppedTyping(name);
          }
          refreshRoomsSoon();
        }
        break;
      case 'error':
        error(frame);
        break;
    }
  }

  function error(frame) {
    const code = String(frame.code);
    state.lastError = code;
    const entry = typeof frame.id === 'string' && outbox.find((item) => item.id === frame.id);
    if (entry) {
      failed(entry, String(frame.message ?? code));
      return;
    }
    if (code === 'unknown_type') {
      // Only typing frames have a type: this server has no typing indicator. Stop sending them.
      state.typingOff = true;
    } else if (code === 'messages_dropped') {
      showNotice(`Your connection was slow: ${frame.count ?? 'some'} messages were skipped.`);
    } else if (code === 'rate_limited') {
      showNotice('Slow down a little: that message was not sent.');
      // The error names no message; those still unanswered a little later were the dropped ones.
      const socket = state.socket;
      const suspects = inFlight();
      setTimeout(() => {
        for (const suspect of suspects) {
          if (suspect.status === 'sent' && suspect.socket === socket) {
            failed(suspect, 'too many messages at once');
          }
        }
      }, RATE_LIMITED_WAIT_MS);
    } else {
      showNotice(String(frame.message ?? code));
    }
  }

  function closed(event) {
    requeue();
    if (FATAL.has(state.lastError)) {
      setConnection('offline', 'Change the room or name to try again');
      showNotice(
        state.lastError === 'invalid_room'
          ? 'That room name is not allowed: use letters, digits, "-", "_" or "." (fewer than 100).'
          : 'That name is not allowed: use 1 to 32 printable characters.',
        { sticky: true },
      );
      return;
    }
    if (state.lastError === 'invalid_since') state.lastId = '';
    const ceiling = Math.min(BACKOFF.maxMs, BACKOFF.baseMs * 2 ** state.attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    state.attempt++;
    setConnection(
      'reconnecting',
      `Closed (${event.code}); retrying in ${Math.ceil(delay / 1000)} s. Click to retry now.`,
    );
    state.retryTimer = setTimeout(connect, delay);
  }

  /** Retry at once when there is reason to think it would work. */
  function retryNow() {
    if (!state.socket && state.retryTimer) connect();
  }

  // ---------------------------------------------------------------- room and name

  function readRoom() {
    const room = new URLSearchParams(window.location.search).get('room');
    if (room === null || room === '') return DEFAULT_ROOM;
    if (ROOM.test(room)) return room;
    showNotice(`"${room}" is not a room name; showing # ${DEFAULT_ROOM}.`);
    return DEFAULT_ROOM;
  }

  function readName() {
    try {
      const name = window.localStorage.getItem(NAME_KEY) ?? '';
      return NAME.test(name) ? name : '';
    } catch {
      return '';
    }
  }

  function rememberName(name) {
    try {
      if (name) window.localStorage.setItem(NAME_KEY, name);
      else window.localStorage.removeItem(NAME_KEY);
    } catch {
      // Storage may be off (private mode); the name still works for this page.
    }
  }

  /** Leaves the current room (if any) and joins `room` as `name`, starting with its history. */
  function enter(room, name) {
    disconnect();
    state.room = room;
    state.name = name;
    state.user = name;
    state.lastId = '';
    state.seen.clear();
    state.attempt = 0;
    state.everLive = false;
    state.historyLoaded = false;
    // What the last room's outbox held stays saved for when this tab comes back to it.
    outbox.length = 0;
    acked.clear();
    echoes.clear();
    clearTyping();
    ui.messages.replaceChildren();
    renderPeople([]);
    ui.roomUsers.textContent = '';
    const saved = loadOutbox(room);
    // A guest whose page reloaded with messages unsent comes back as the same guest, so that
    // the server, which tells resends apart per user, knows them.
    if (!name && saved.user) state.user = saved.user;
    for (const { id, message, ts } of saved.entries) {
      const entry = { id, message, ts, status: 'queued', error: '' };
      outbox.push(entry);
      showPending(entry);
    }
    updateEmpty();
    ui.join.room.value = room;
    ui.join.name.value = name;
    ui.join.name.placeholder = 'guest';
    ui.roomName.textContent = `# ${room}`;
    ui.form.message.placeholder = `Message # ${room}`;
    document.title = `# ${room} · Lobby`;
    for (const link of ui.rooms.querySelectorAll('a')) {
      if (link.dataset.room === room) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    connect();
    refreshRoomsSoon();
  }

  function go(room, { push = true } = {}) {
    if (push) {
      const url = new URL(window.location.href);
      url.searchParams.set('room', room);
      window.history.pushState({ room }, '', url);
    }
    enter(room, state.name);
  }

  ui.join.addEventListener('submit', (event) => {
    event.preventDefault();
    const room = ui.join.room.value.trim();
    const name = ui.join.name.value.trim();
    if (!ROOM.test(room)) {
      showNotice('Room names use letters, digits, "-", "_" or "." (fewer than 100).');
      ui.join.room.focus();
      return;
    }
    if (name && !NAME.test(name)) {
      showNotice('Names are 1 to 32 printable characters.');
      ui.join.name.focus();
      return;
    }
    rememberName(name);
    if (room !== state.room) {
      state.name = name;
      go(room);
    } else if (name !== state.name || !state.socket) {
      enter(room, name);
    }
    ui.form.message.focus();
  });

  ui.rooms.addEventListener('click', (event) => {
    const link = event.target.closest('a[data-room]');
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    if (link.dataset.room !== state.room) go(link.dataset.room);
    if (window.matchMedia('(max-width: 720px)').matches) ui.roomsPanel.open = false;
  });

  window.addEventListener('popstate', () => {
    const room = readRoom();
    if (room !== state.room) enter(room, state.name);
  });

  // ---------------------------------------------------------------- sending

  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    const message = ui.form.message.value;
    if (message.trim() === '') return;
    queue(message);
    ui.form.reset();
    // The next keystroke is a new message being typed: say so at once.
    typingSentAt = 0;
  });

  ui.form.message.addEventListener('input', () => {
    if (ui.form.message.value.trim() !== '') sendTyping();
  });

  // ---------------------------------------------------------------- lifecycle

  ui.connection.addEventListener('click', retryNow);
  window.addEventListener('online', retryNow);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible') return;
    retryNow();
    refreshRooms();
  });

  // On a phone the room list starts folded, leaving the screen to the messages.
  if (window.matchMedia('(max-width: 720px)').matches) ui.roomsPanel.open = false;
  state.name = readName();
  enter(readRoom(), state.name);
  refreshRooms();
})();
