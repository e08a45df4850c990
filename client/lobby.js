// The lobby: pick a room and a name, chat, see who is here. Plain JS served as is.
// Everything people typed is rendered with textContent, never as HTML.
/* global fetch, URLSearchParams */
'use strict';

(() => {
  /** Channels' group-name rules, as the server checks them. */
  const ROOM = /^[A-Za-z0-9._-]{1,99}$/;
  /** 1–32 printable characters, as the server checks them. */
  const NAME = /^[^\p{C}]{1,32}$/u;
  const DEFAULT_ROOM = 'test';
  const NAME_KEY = 'lobby.name';
  /** Reconnect delays: doubling from `baseMs`, capped at `maxMs`, half of each one random. */
  const BACKOFF = { baseMs: 500, maxMs: 15000 };
  /** A handshake that has not opened by then is given up and retried. */
  const OPEN_TIMEOUT_MS = 10000;
  /** Errors after which retrying the same URL cannot help; the user has to change it. */
  const FATAL = new Set(['invalid_room', 'invalid_name']);
  const ROOMS_REFRESH_MS = 15000;
  /** Consecutive messages of one person closer than this share one header. */
  const GROUP_MS = 5 * 60 * 1000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    join: $('join'),
    connection: $('connection'),
    people: $('people'),
    peopleCount: $('people-count'),
    rooms: $('rooms'),
    roomsPanel: $('rooms-panel'),
    roomList: $('room-list'),
    roomName: $('room-name'),
    roomUsers: $('room-users'),
    scroller: $('scroller'),
    messages: $('messages'),
    empty: $('empty'),
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
  };

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

  /** Hues far enough apart to tell at a glance. */
  const HUES = [4, 28, 48, 140, 175, 205, 230, 265, 295, 330];

  /** A stable hue per name (FNV-1a, then mixed: its low bits alone repeat), so a person keeps their colour. */
  function hueOf(name) {
    let hash = 2166136261;
    for (const char of name) hash = Math.imul(hash ^ char.codePointAt(0), 16777619);
    hash ^= hash >>> 16;
    hash = Math.imul(hash, 0x85ebca6b);
    hash ^= hash >>> 13;
    return HUES[(hash >>> 0) % HUES.length];
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
      if (typeof frame.ts === 'number') {
        const date = new Date(frame.ts);
        const time = document.createElement('time');
        time.dateTime = date.toISOString();
        time.title = fullFormat.format(date);
        time.textContent = shortTime(date);
        meta.append(time);
      }
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

  /** Adds a chat frame once (deduplicated by id), in id order. */
  function addMessage(frame) {
    if (typeof frame.message !== 'string') return;
    const id = isId(frame.id) ? frame.id : '';
    if (id) {
      if (state.seen.has(id)) return;
      state.seen.add(id);
      if (!state.lastId || compareIds(id, state.lastId) > 0) state.lastId = id;
    }
    const stick = nearBottom() || frame.user === state.user;
    const item = messageElement(frame);
    // Frames arrive in order; this only matters if one ever does not.
    let before = null;
    if (id) {
      for (let node = ui.messages.lastElementChild; node; node = node.previousElementSibling) {
        if (!node.dataset.id || compareIds(node.dataset.id, id) < 0) break;
        before = node;
      }
    }
    ui.messages.insertBefore(item, before);
    groupWithPrevious(item);
    if (item.nextElementSibling) groupWithPrevious(item.nextElementSibling);
    updateEmpty();
    if (stick) scrollToBottom();
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

  // ---------------------------------------------------------------- rooms API

  let roomsTimer = 0;
  let roomsApi = true;
  async function refreshRooms() {
    clearTimeout(roomsTimer);
    if (!roomsApi) return;
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
        if (Array.isArray(rooms)) renderRooms(rooms);
      }
    } catch {
      // The server is away; the connection state already says so.
    }
    if (document.visibilityState === 'visible') {
      roomsTimer = setTimeout(refreshRooms, ROOMS_REFRESH_MS);
    }
  }

  let roomsSoon = 0;
  function refreshRoomsSoon() {
    clearTimeout(roomsSoon);
    roomsSoon = setTimeout(refreshRooms, 300);
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
      console.log(JSON.stringify(frame));
      receive(frame);
    };
    socket.onclose = (event) => {
      clearTimeout(state.openTimer);
      if (socket !== state.socket) return;
      state.socket = null;
      closed(event);
    };
  }

  /** Closes the socket without reconnecting (switching rooms or names). */
  function disconnect() {
    const socket = state.socket;
    state.socket = null;
    clearTimeout(state.retryTimer);
    clearTimeout(state.openTimer);
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
        updateEmpty();
        scrollToBottom();
        break;
      case 'chat':
        addMessage(frame);
        break;
      case 'presence':
        if (frame.room === undefined || frame.room === state.room) {
          renderPeople(Array.isArray(frame.users) ? frame.users.map(String) : []);
          refreshRoomsSoon();
        }
        break;
      case 'error':
        state.lastError = String(frame.code);
        if (frame.code === 'messages_dropped') {
          showNotice(`Your connection was slow: ${frame.count ?? 'some'} messages were skipped.`);
        } else if (frame.code === 'rate_limited') {
          showNotice('Slow down a little: that message was not sent.');
        } else {
          showNotice(String(frame.message ?? frame.code));
        }
        break;
    }
  }

  function closed(event) {
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
    ui.messages.replaceChildren();
    renderPeople([]);
    ui.roomUsers.textContent = '';
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
    const input = ui.form.message;
    const message = input.value;
    if (message.trim() === '') return;
    const socket = state.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      // Keep the text: it is sent once the person presses Enter on a live connection.
      showNotice('Not connected right now; your message is kept until it can be sent.');
      return;
    }
    socket.send(JSON.stringify({ message }));
    ui.form.reset();
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
