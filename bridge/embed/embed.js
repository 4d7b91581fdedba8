/*
 * assisto web embed: the browser side of the client chat (protocol: docs/embed-protocol.md).
 *
 * One self-contained script without dependencies. It injects its own DOM into the
 * institution's page and loads embed.css from its own base URL. No inline handlers, no
 * eval, no innerHTML (server data only ever goes through textContent), so it works under a
 * strict Content-Security-Policy. The host page's policy has to allow the bridge's origin
 * for script-src, style-src and connect-src (https: and wss:), and blob: for media-src.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------------------------------
  // Texts. German is the default, English the second locale (data-lang="en").

  const STRINGS = {
    de: {
      landmark: 'Beratungs-Chat',
      open: 'Chat öffnen',
      minimise: 'Chat minimieren',
      title: 'Chat mit der Beratungsstelle',
      unreadOne: '1 neue Nachricht',
      unreadMany: '{n} neue Nachrichten',
      soundOff: 'Ton aus',
      soundOn: 'Ton an',
      end: 'Chat beenden',
      confirmEnd: 'Möchtest du den Chat wirklich beenden?',
      deleteData: 'Meine Daten löschen',
      transcript: 'Verlauf herunterladen',
      transcriptFile: 'chatverlauf.txt',
      deleteText:
        'Damit werden alle deine Nachrichten, Dateien und Sprachnachrichten in diesem Chat und der Chat selbst gelöscht. Das kann nicht rückgängig gemacht werden.',
      deleteConfirm: 'Endgültig löschen',
      cancel: 'Abbrechen',
      closeAlert: 'Hinweis schließen',
      log: 'Nachrichten',
      loadOlder: 'Ältere Nachrichten laden',
      you: 'Du',
      counsellor: 'Beratung',
      sending: 'wird gesendet …',
      notSent: 'nicht gesendet –',
      retry: 'erneut versuchen',
      read: 'Gelesen',
      typing: '{name} schreibt …',
      typingAnon: 'Die Beratung schreibt …',
      waiting: 'Du bist im Warteraum. Gleich ist jemand für dich da.',
      queue: 'Du bist an Position {n}.',
      nextOpen: 'Gerade ist der Chat geschlossen. Wir sind wieder am {date} ab {time} Uhr für dich da.',
      queueWait: 'Geschätzte Wartezeit: etwa {m} Min.',
      someoneComing: 'Eine beratende Person kommt gleich zu dir.',
      reconnecting: 'Die Verbindung ist unterbrochen. Sie wird wiederhergestellt …',
      starting: 'Der Chat wird gestartet …',
      unavailable:
        'Zurzeit ist keine Beraterin und kein Berater erreichbar. Bitte versuche es später noch einmal.',
      ended: 'Der Chat ist beendet.',
      deleted: 'Deine Daten wurden gelöscht.',
      expired: 'Deine Sitzung ist abgelaufen. Du kannst einen neuen Chat starten.',
      blocked: 'Du kannst diesen Chat leider nicht mehr nutzen.',
      loginRequired: 'Bitte melde dich an, um den Chat zu nutzen.',
      startFailed: 'Der Chat konnte nicht gestartet werden.',
      loadError: 'Der Chat konnte nicht geladen werden. Bitte versuche es später noch einmal.',
      newChat: 'Neuen Chat starten',
      chooseTitle: 'Bevor es losgeht',
      chooseDepartment: 'Wobei dürfen wir dir helfen?',
      chooseCounsellor: 'Mit wem möchtest du schreiben?',
      nextFree: 'Mit der nächsten freien beratenden Person',
      departmentClosed: '(gerade nicht erreichbar)',
      startChat: 'Chat starten',
      team: 'Unser Team',
      teamIntro: 'Hier siehst du, wer für dich da ist. Wenn du jemandem schreibst, kommt die Person in diesen Chat.',
      teamEmpty: 'Gerade kannst du niemanden direkt anschreiben.',
      writeTo: 'Schreiben',
      writeToLabel: '{name} schreiben',
      wroteTo: 'Du hast {name} geschrieben.',
      close: 'Schließen',
      statusOnline: 'online',
      statusAway: 'abwesend',
      statusBusy: 'beschäftigt',
      statusOffline: 'offline',
      tryAgain: 'Erneut versuchen',
      inputLabel: 'Nachricht schreiben',
      placeholder: 'Nachricht schreiben …',
      send: 'Senden',
      charsLeft: 'Noch {n} Zeichen',
      charsNone: 'Maximale Länge erreicht',
      emoji: 'Emoji einfügen',
      emojiGroup: 'Emojis',
      attach: 'Dateien anhängen',
      tooManyFiles: 'Du kannst höchstens {n} Dateien auf einmal senden.',
      fileTooLarge: 'Die Datei „{name}“ ist zu groß ({size}). Erlaubt sind höchstens {max}.',
      uploadingOne: '„{name}“ wird hochgeladen …',
      uploadingMany: '{n} Dateien werden hochgeladen …',
      record: 'Sprachnachricht aufnehmen',
      stopRecord: 'Aufnahme beenden',
      recording: 'Aufnahme läuft: {time}',
      voiceReady: 'Sprachnachricht ({time})',
      discard: 'Verwerfen',
      sendVoice: 'Sprachnachricht senden',
      voiceSending: 'Sprachnachricht wird gesendet …',
      voiceTooLarge: 'Die Sprachnachricht ist zu lang. Bitte nimm eine kürzere auf.',
      micDenied: 'Der Zugriff auf das Mikrofon wurde nicht erlaubt.',
      micError: 'Die Aufnahme konnte nicht gestartet werden.',
      phoneTitle: 'Telefonnummer',
      linkTitle: 'Link',
      openLink: 'Öffnen',
      linkHost: 'Seite auf',
      videoTitle: 'Video-Chat',
      openVideo: 'Video-Chat öffnen',
      newWindow: '(öffnet in einem neuen Fenster)',
      file: 'Datei',
      voice: 'Sprachnachricht',
      voiceTitle: 'Sprachnachricht ({time})',
      voiceFileName: 'sprachnachricht',
      download: 'Herunterladen',
      delete: 'Löschen',
      confirmDeleteMsg: 'Möchtest du diese Nachricht wirklich löschen?',
      play: 'Abspielen',
      pause: 'Pause',
      position: 'Position',
      positionText: '{cur} von {total}',
      speed: 'Geschwindigkeit',
      volume: 'Lautstärke',
      playError: 'Die Sprachnachricht kann nicht abgespielt werden.',
      networkError:
        'Keine Verbindung zum Server. Bitte prüfe deine Internetverbindung und versuche es noch einmal.',
      serverError: 'Etwas ist schiefgelaufen. Bitte versuche es noch einmal.',
      tooLarge: 'Das ist leider zu groß.',
      rateLimited: 'Das war zu schnell hintereinander. Bitte warte einen Moment.',
      emojiNames: [
        'grinsendes Gesicht', 'lächelndes Gesicht', 'leicht lächelndes Gesicht', 'zwinkerndes Gesicht',
        'Tränen lachendes Gesicht', 'lächelndes Gesicht mit Herzen', 'umarmendes Gesicht', 'nachdenkendes Gesicht',
        'erstauntes Gesicht', 'verwirrtes Gesicht', 'besorgtes Gesicht', 'trauriges Gesicht',
        'weinendes Gesicht', 'laut weinendes Gesicht', 'verärgertes Gesicht', 'schlafendes Gesicht',
        'Daumen hoch', 'Daumen runter', 'winkende Hand', 'gefaltete Hände',
        'angespannter Bizeps', 'rotes Herz', 'Sonne', 'Regenbogen',
      ],
    },
    en: {
      landmark: 'Counselling chat',
      open: 'Open chat',
      minimise: 'Minimise chat',
      title: 'Chat with the counselling service',
      unreadOne: '1 new message',
      unreadMany: '{n} new messages',
      soundOff: 'Sound off',
      soundOn: 'Sound on',
      end: 'End chat',
      confirmEnd: 'Do you really want to end the chat?',
      deleteData: 'Delete my data',
      transcript: 'Download the conversation',
      transcriptFile: 'chat-transcript.txt',
      deleteText:
        'This deletes all your messages, files and voice messages in this chat, and the chat itself. This cannot be undone.',
      deleteConfirm: 'Delete permanently',
      cancel: 'Cancel',
      closeAlert: 'Close notice',
      log: 'Messages',
      loadOlder: 'Load older messages',
      you: 'You',
      counsellor: 'Counsellor',
      sending: 'sending …',
      notSent: 'not sent –',
      retry: 'try again',
      read: 'Read',
      typing: '{name} is typing …',
      typingAnon: 'The counsellor is typing …',
      waiting: 'You are in the waiting room. Someone will be with you shortly.',
      queue: 'You are number {n} in the queue.',
      nextOpen: 'The chat is closed right now. We are here for you again on {date} from {time}.',
      queueWait: 'Estimated wait: about {m} min.',
      someoneComing: 'A counsellor is on the way.',
      reconnecting: 'The connection was interrupted. Reconnecting …',
      starting: 'Starting the chat …',
      unavailable: 'No counsellor is available at the moment. Please try again later.',
      ended: 'The chat has ended.',
      deleted: 'Your data has been deleted.',
      expired: 'Your session has expired. You can start a new chat.',
      blocked: 'Unfortunately you can no longer use this chat.',
      loginRequired: 'Please log in to use the chat.',
      startFailed: 'The chat could not be started.',
      loadError: 'The chat could not be loaded. Please try again later.',
      newChat: 'Start a new chat',
      chooseTitle: 'Before we start',
      chooseDepartment: 'What can we help you with?',
      chooseCounsellor: 'Who would you like to talk to?',
      nextFree: 'The next free counsellor',
      departmentClosed: '(not available right now)',
      startChat: 'Start chat',
      team: 'Our team',
      teamIntro: 'This is who is here for you. When you write to someone, they join this chat.',
      teamEmpty: 'You cannot write to anyone directly right now.',
      writeTo: 'Write',
      writeToLabel: 'Write to {name}',
      wroteTo: 'You wrote to {name}.',
      close: 'Close',
      statusOnline: 'online',
      statusAway: 'away',
      statusBusy: 'busy',
      statusOffline: 'offline',
      tryAgain: 'Try again',
      inputLabel: 'Write a message',
      placeholder: 'Write a message …',
      send: 'Send',
      charsLeft: '{n} characters left',
      charsNone: 'Maximum length reached',
      emoji: 'Insert emoji',
      emojiGroup: 'Emojis',
      attach: 'Attach files',
      tooManyFiles: 'You can send at most {n} files at once.',
      fileTooLarge: 'The file “{name}” is too large ({size}). The maximum is {max}.',
      uploadingOne: 'Uploading “{name}” …',
      uploadingMany: 'Uploading {n} files …',
      record: 'Record a voice message',
      stopRecord: 'Stop recording',
      recording: 'Recording: {time}',
      voiceReady: 'Voice message ({time})',
      discard: 'Discard',
      sendVoice: 'Send voice message',
      voiceSending: 'Sending the voice message …',
      voiceTooLarge: 'The voice message is too long. Please record a shorter one.',
      micDenied: 'Access to the microphone was not allowed.',
      micError: 'The recording could not be started.',
      phoneTitle: 'Phone number',
      linkTitle: 'Link',
      openLink: 'Open',
      linkHost: 'Page on',
      videoTitle: 'Video chat',
      openVideo: 'Open video chat',
      newWindow: '(opens in a new window)',
      file: 'File',
      voice: 'Voice message',
      voiceTitle: 'Voice message ({time})',
      voiceFileName: 'voice-message',
      download: 'Download',
      delete: 'Delete',
      confirmDeleteMsg: 'Do you really want to delete this message?',
      play: 'Play',
      pause: 'Pause',
      position: 'Position',
      positionText: '{cur} of {total}',
      speed: 'Speed',
      volume: 'Volume',
      playError: 'The voice message cannot be played.',
      networkError: 'No connection to the server. Please check your internet connection and try again.',
      serverError: 'Something went wrong. Please try again.',
      tooLarge: 'That is too large.',
      rateLimited: 'That was too fast. Please wait a moment.',
      emojiNames: [
        'grinning face', 'smiling face', 'slightly smiling face', 'winking face',
        'face with tears of joy', 'smiling face with hearts', 'hugging face', 'thinking face',
        'astonished face', 'confused face', 'worried face', 'sad face',
        'crying face', 'loudly crying face', 'angry face', 'sleeping face',
        'thumbs up', 'thumbs down', 'waving hand', 'folded hands',
        'flexed biceps', 'red heart', 'sun', 'rainbow',
      ],
    },
  };

  // In the order of STRINGS.*.emojiNames.
  const EMOJI = [
    '😀', '😊', '🙂', '😉', '😂', '🥰', '🤗', '🤔', '😮', '😕', '😟', '🙁',
    '😢', '😭', '😠', '😴', '👍', '👎', '👋', '🙏', '💪', '❤️', '☀️', '🌈',
  ];
  const EMOJI_COLUMNS = 6; // must match the grid in embed.css
  const RATES = [0.75, 1, 1.25, 1.5, 2];
  const VOICE_TYPES = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm', 'audio/ogg'];

  // Simple stroke icons on a 24×24 grid; `true` marks filled shapes.
  const ICONS = {
    chat: ['M4 5h16v11H9l-5 4z'],
    close: ['M6 6l12 12M18 6L6 18'],
    minimise: ['M6 9l6 6 6-6'],
    sound: ['M4 9h4l5-4v14l-5-4H4zM16 9a4 4 0 0 1 0 6M18.5 6.5a8 8 0 0 1 0 11'],
    soundOff: ['M4 9h4l5-4v14l-5-4H4zM16 9l5 6M21 9l-5 6'],
    smile: ['M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM8 14a5 5 0 0 0 8 0M9 9.5h.01M15 9.5h.01'],
    clip: ['M20 11.5l-7.8 7.8a5 5 0 0 1-7.1-7.1l8.5-8.5a3.3 3.3 0 0 1 4.7 4.7l-8.5 8.5a1.7 1.7 0 0 1-2.4-2.4l7.8-7.8'],
    mic: ['M12 3a3 3 0 0 0-3 3v5a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3'],
    stop: ['M7 7h10v10H7z', true],
    play: ['M8 5v14l11-7z', true],
    pause: ['M7 5h3v14H7zM14 5h3v14h-3z', true],
  };

  // ---------------------------------------------------------------------------------------
  // Options from the script tag.

  const script = document.currentScript;
  const opts = script ? readOptions(script) : null;
  if (!opts) return;
  const T = STRINGS[opts.lang];
  const LOCALE = opts.lang === 'en' ? 'en-GB' : 'de-DE';
  const STORE_KEY = `assisto-session-${opts.inst}-${opts.area}`;
  const SUB_KEY = `${STORE_KEY}-sub`; // registered area: whose session the stored one is
  const MUTE_KEY = 'assisto-mute';
  const uid = `assisto-${Math.random().toString(36).slice(2, 8)}`;
  const VOICE_MIME = voiceMime();

  function readOptions(el) {
    const d = el.dataset;
    const src = el.src || '';
    const cut = src.lastIndexOf('/embed.js');
    const inst = (d.institution || '').trim();
    if (!inst || cut < 0) {
      console.warn('[assisto] embed.js needs data-institution and must be loaded as …/embed.js');
      return null;
    }
    return {
      base: src.slice(0, cut),
      inst,
      form: d.form === 'tile' ? 'tile' : 'bubble',
      area: d.area === 'registered' ? 'registered' : 'anonymous',
      token: d.token || '',
      target: d.target || '',
      lang: (d.lang || '').toLowerCase().startsWith('en') ? 'en' : 'de',
      test: d.test === '1',
    };
  }

  // ---------------------------------------------------------------------------------------
  // State.

  const S = {
    cfg: null, // normalised config
    phase: 'idle', // idle | choose | starting | unavailable | chat | refused | ended | deleted | expired | error
    gen: 0, // bumped whenever a session is torn down; late async results of older ones are dropped
    token: null,
    state: {},
    byId: new Map(), // server id → {m, el, cleanup}
    pending: new Map(), // txn_id → {m, el} for own messages not yet confirmed
    newestId: null, // newest id seen on the stream (history or real time), for `after`
    oldestId: null,
    more: false,
    loadingOlder: false,
    lastCounsellorId: null,
    lastReadSent: null,
    readTimer: 0,
    counsellorName: '',
    refusedText: '',
    open: false, // bubble panel open
    shown: false, // tile scrolled into view
    unread: 0,
    muted: storageGet(MUTE_KEY) === '1',
    typing: false,
    typingSentAt: 0,
    typingIdle: 0,
    deleting: false,
    choice: null, // {department, counsellor} the visitor chose before starting a live chat
    choosing: null, // the chooser's current selection while it is shown
  };

  // Real-time transport: a WebSocket, or long polling as the fallback.
  const tr = {
    mode: 'ws',
    active: false,
    gen: 0, // bumped on every (re)connect and stop; callbacks of older connections are ignored
    ws: null,
    ready: false,
    readyAt: 0,
    failures: 0, // sockets in a row that never got to "ready"
    attempt: 0, // backoff step
    lastFrameAt: 0,
    timer: 0,
    ping: 0,
    abort: null,
  };

  // Voice recording.
  const rec = { state: 'idle', stream: null, recorder: null, chunks: [], startedAt: 0, durationMs: 0, blob: null, tick: 0 };
  const players = new Set(); // <audio> elements of voice messages
  const timers = new Set(); // one-shot timers of the running session, cleared on teardown
  let ui = null;
  let idSeq = 0;
  let audioCtx = null;
  let dialogReturn = null;

  if (opts.test) {
    // Browser tests use this to exercise the long-polling fallback.
    window.assistoEmbed = {
      forcePolling() {
        tr.mode = 'poll';
        if (ui) ui.root.setAttribute('data-transport', 'poll');
        if (tr.active) connect();
      },
    };
  }

  // ---------------------------------------------------------------------------------------
  // Small helpers.

  function t(key, vars) {
    return T[key].replace(/\{(\w+)\}/g, (_, k) => String(vars[k]));
  }

  // Creates an element. props: class, text, on<event> handlers, anything else is an attribute
  // (true → present, false/null/undefined → absent).
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) if (c != null && c !== false) el.append(c);
    return el;
  }

  function icon(name) {
    const [d, filled] = ICONS[name];
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', 'assisto-icon');
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', d);
    path.setAttribute('class', filled ? 'assisto-icon-fill' : 'assisto-icon-line');
    svg.append(path);
    return svg;
  }

  function nextId(prefix) {
    idSeq += 1;
    return `${uid}-${prefix}-${idSeq}`;
  }

  function later(fn, ms) {
    const id = setTimeout(() => {
      timers.delete(id);
      fn();
    }, ms);
    timers.add(id);
    return id;
  }

  function cancel(id) {
    clearTimeout(id);
    timers.delete(id);
  }

  function storageGet(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (e) {
      return null; // storage disabled: the chat still works, it just does not survive a reload
    }
  }

  function storageSet(key, value) {
    try {
      if (value == null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch (e) {
      /* see storageGet */
    }
  }

  const timeFmt = new Intl.DateTimeFormat('de-DE', { hour: '2-digit', minute: '2-digit' });
  const dayFmt = new Intl.DateTimeFormat('de-DE', { day: '2-digit', month: '2-digit' });

  function fmtTime(ts) {
    const d = new Date(ts);
    const today = d.toDateString() === new Date().toDateString();
    return today ? timeFmt.format(d) : `${dayFmt.format(d)}, ${timeFmt.format(d)}`;
  }

  function fmtDur(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  }

  function fmtSize(bytes) {
    const n = Number(bytes) || 0;
    const num = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 1 });
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${num.format(n / 1024)} KB`;
    return `${num.format(n / (1024 * 1024))} MB`;
  }

  function fmtRate(r) {
    return `${new Intl.NumberFormat(LOCALE).format(r)}×`;
  }

  function newTxnId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return `w${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  }

  function backoff(attempt) {
    const base = 1000 * 2 ** Math.min(attempt, 5);
    return Math.round(Math.min(30000, base * (0.8 + Math.random() * 0.4)));
  }

  function finePointer() {
    return !!window.matchMedia && window.matchMedia('(pointer: fine)').matches;
  }

  function hiddenNow(el) {
    return !el || !el.isConnected || !!el.closest('[hidden]');
  }

  // The `sub` of the signed token of the registered area (not verified here: the bridge does).
  function tokenSubject(token) {
    try {
      const p = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return String(JSON.parse(atob(p.padEnd(Math.ceil(p.length / 4) * 4, '='))).sub || '');
    } catch (e) {
      return '';
    }
  }

  function voiceMime() {
    const MR = window.MediaRecorder;
    const md = navigator.mediaDevices;
    if (!MR || typeof MR.isTypeSupported !== 'function' || !md || !md.getUserMedia) return '';
    return VOICE_TYPES.find((type) => MR.isTypeSupported(type)) || '';
  }

  // ---------------------------------------------------------------------------------------
  // HTTP.

  class ApiError extends Error {
    constructor(status, data) {
      super((data && typeof data.error === 'string' && data.error) || ApiError.fallback(status));
      this.status = status;
      this.blocked = !!(data && data.blocked);
      this.retryAfterMs = (data && Number(data.retry_after_ms)) || 0;
    }

    static fallback(status) {
      if (status === 0) return T.networkError;
      if (status === 413) return T.tooLarge;
      if (status === 429) return T.rateLimited;
      return T.serverError;
    }
  }

  // o: auth (default true), json, body + type, blob (answer as a Blob), signal, timeoutMs
  // (default 30 s, 0 = none). Throws ApiError (status 0 = no answer), or the caller's abort.
  async function api(method, path, o = {}) {
    const headers = {};
    if (o.auth !== false) {
      if (!S.token) throw new ApiError(401, null);
      headers.Authorization = `Bearer ${S.token}`;
    }
    let body = o.body;
    if (o.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(o.json);
    } else if (o.type) {
      headers['Content-Type'] = o.type;
    }
    const ctl = new AbortController();
    const abort = () => ctl.abort();
    if (o.signal) o.signal.addEventListener('abort', abort);
    const timeout = o.timeoutMs === 0 ? 0 : setTimeout(abort, o.timeoutMs || 30000);
    try {
      const res = await fetch(opts.base + path, {
        method, headers, body, signal: ctl.signal, credentials: 'omit', cache: 'no-store',
      });
      if (o.blob && res.ok) return await res.blob();
      const text = await res.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch (e) {
        data = null;
      }
      if (!res.ok) throw new ApiError(res.status, data);
      return data || {};
    } catch (e) {
      if (e instanceof ApiError || (o.signal && o.signal.aborted)) throw e;
      throw new ApiError(0, null); // network failure or our timeout
    } finally {
      clearTimeout(timeout);
      if (o.signal) o.signal.removeEventListener('abort', abort);
    }
  }

  function errorText(e) {
    return e instanceof ApiError ? e.message : T.serverError;
  }

  // The common reaction to a failed request while chatting.
  function fail(e) {
    if (!e || e.name === 'AbortError') return;
    if (S.phase === 'chat' && e.status === 401) sessionLost();
    else if (S.phase === 'chat' && e.blocked) refuse(e.message);
    else showAlert(errorText(e));
  }

  // ---------------------------------------------------------------------------------------
  // Start-up.

  async function boot() {
    const css = loadCss();
    let cfg = null;
    try {
      cfg = await api('GET', `/institutions/${encodeURIComponent(opts.inst)}/config`, { auth: false });
    } catch (e) {
      cfg = null;
    }
    await Promise.all([css, domReady()]);
    if (!cfg) {
      // Without the config we cannot know whether to show anything. A bubble stays away; a
      // tile has a place reserved on the page, so it says what went wrong.
      if (opts.form === 'tile') renderTileError();
      return;
    }
    const forms = cfg.forms && cfg.forms[opts.area];
    if (!forms || forms[opts.form] !== true) return; // this form is switched off: show nothing
    S.cfg = normaliseConfig(cfg);
    if (!build()) return;

    const stored = storedToken();
    if (stored) {
      S.token = stored;
      resume(); // connects right away, so counsellor messages can ring while the bubble is closed
    } else {
      setPhase(S.cfg.available ? 'idle' : 'unavailable');
    }
    if (opts.form === 'tile') watchTile();
  }

  function loadCss() {
    return new Promise((resolve) => {
      setTimeout(resolve, 4000); // never wait for the stylesheet forever
      let link = document.querySelector('link[data-assisto-css]');
      if (link && link.sheet) {
        resolve();
        return;
      }
      if (!link) {
        link = h('link', { rel: 'stylesheet', href: `${opts.base}/embed.css`, 'data-assisto-css': true });
        (document.head || document.documentElement).append(link);
      }
      link.addEventListener('load', resolve);
      link.addEventListener('error', resolve);
    });
  }

  function domReady() {
    if (document.readyState !== 'loading') return Promise.resolve();
    return new Promise((resolve) => document.addEventListener('DOMContentLoaded', resolve, { once: true }));
  }

  function normaliseConfig(c) {
    const limits = c.limits || {};
    const features = c.features || {};
    const positive = (v, dflt) => (Number.isInteger(v) && v > 0 ? v : dflt);
    return {
      name: (c.institution && typeof c.institution.name === 'string' && c.institution.name) || '',
      available: c.available === true,
      nextOpen: typeof c.next_open === 'string' ? c.next_open : null,
      departments: normaliseDepartments(c.departments),
      team: normaliseTeam(c.team),
      files: features.files === true,
      voice: features.voice === true && !!VOICE_MIME,
      maxText: positive(limits.max_text_chars, 4000),
      maxFiles: positive(limits.max_files, 5),
      maxBytes: positive(limits.max_file_bytes, 10 * 1024 * 1024),
    };
  }

  function normaliseDepartments(list) {
    return (Array.isArray(list) ? list : [])
      .filter((d) => d && typeof d.id === 'string' && typeof d.name === 'string')
      .map((d) => ({ id: d.id, name: d.name, available: d.available === true, nextOpen: typeof d.next_open === 'string' ? d.next_open : null }));
  }

  function normaliseTeam(list) {
    return (Array.isArray(list) ? list : [])
      .filter((m) => m && typeof m.id === 'string' && typeof m.name === 'string')
      .map((m) => ({
        id: m.id,
        name: m.name,
        status: typeof m.status === 'string' ? m.status : 'offline',
        departments: Array.isArray(m.departments) ? m.departments.filter((d) => typeof d === 'string') : [],
      }));
  }

  function storedToken() {
    const token = storageGet(STORE_KEY);
    if (!token) return null;
    // In the logged-in area a stored session is only resumed for the same site user, so that
    // nobody sees the previous user's chat on a shared computer.
    if (opts.area === 'registered' && (!opts.token || storageGet(SUB_KEY) !== tokenSubject(opts.token))) {
      dropSession();
      return null;
    }
    return token;
  }

  function saveSession(token) {
    S.token = token;
    storageSet(STORE_KEY, token);
    if (opts.area === 'registered') storageSet(SUB_KEY, tokenSubject(opts.token));
  }

  function dropSession() {
    S.token = null;
    storageSet(STORE_KEY, null);
    storageSet(SUB_KEY, null);
  }

  function findTarget() {
    let target = null;
    try {
      target = opts.target ? document.querySelector(opts.target) : null;
    } catch (e) {
      target = null;
    }
    if (!target) console.warn(`[assisto] data-target "${opts.target}" does not match an element`);
    return target;
  }

  function renderTileError() {
    const target = findTarget();
    if (!target) return;
    target.append(
      h('div', { class: 'assisto-root assisto-tile assisto-tile--error', 'data-assisto-form': 'tile', lang: opts.lang },
        h('div', { class: 'assisto-alert', role: 'alert', text: T.loadError })),
    );
  }

  // ---------------------------------------------------------------------------------------
  // DOM.

  function build() {
    const tile = opts.form === 'tile';
    const target = tile ? findTarget() : document.body;
    if (!target) return false;
    ui = {};
    const titleId = nextId('title');

    ui.title = h('h2', { id: titleId, class: 'assisto-title', tabindex: -1 },
      h('span', { class: 'assisto-title-main', text: T.title }), ' ',
      h('span', { class: 'assisto-title-inst', text: S.cfg.name }));
    ui.mute = h('button', { type: 'button', class: 'assisto-btn assisto-icon-btn assisto-mute', onclick: toggleMute });
    renderMute();
    ui.endBtn = h('button', { type: 'button', class: 'assisto-btn assisto-action assisto-end', text: T.end, hidden: true, onclick: endChat });
    ui.deleteBtn = h('button', {
      type: 'button', class: 'assisto-btn assisto-action assisto-delete-data', text: T.deleteData, hidden: true, onclick: openDeleteDialog,
    });
    ui.transcriptBtn = h('button', {
      type: 'button', class: 'assisto-btn assisto-action assisto-transcript', text: T.transcript, hidden: true, onclick: downloadTranscript,
    });
    ui.teamBtn = h('button', {
      type: 'button', class: 'assisto-btn assisto-action assisto-team-btn', text: T.team, hidden: true, onclick: openTeam,
    });
    ui.actions = h('div', { class: 'assisto-actions', hidden: true }, ui.teamBtn, ui.transcriptBtn, ui.endBtn, ui.deleteBtn);
    const tools = h('div', { class: 'assisto-tools' }, ui.mute,
      tile ? null : h('button', {
        type: 'button', class: 'assisto-btn assisto-icon-btn assisto-minimise', 'aria-label': T.minimise, onclick: () => closePanel(true),
      }, icon('minimise')));
    const header = h('div', { class: 'assisto-header' }, h('div', { class: 'assisto-header-top' }, ui.title, tools), ui.actions);

    ui.alert = h('div', { class: 'assisto-alert', role: 'alert' });
    ui.alertBox = h('div', { class: 'assisto-alert-box', hidden: true }, ui.alert,
      h('button', { type: 'button', class: 'assisto-btn assisto-icon-btn assisto-alert-close', 'aria-label': T.closeAlert, onclick: clearAlert }, icon('close')));
    ui.conn = h('p', { class: 'assisto-conn', hidden: true, text: T.reconnecting });
    ui.busy = h('p', { class: 'assisto-busy', hidden: true });
    ui.statusbar = h('div', { class: 'assisto-statusbar', role: 'status' }, ui.conn, ui.busy);
    ui.more = h('button', { type: 'button', class: 'assisto-btn assisto-more', text: T.loadOlder, hidden: true, onclick: loadOlder });
    ui.log = h('div', {
      class: 'assisto-log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': T.log, tabindex: 0,
    });
    ui.typing = h('div', { class: 'assisto-typing', 'aria-live': 'polite' });
    ui.notice = h('div', { class: 'assisto-notice', hidden: true });
    ui.announcer = h('div', { class: 'assisto-sr', role: 'status' });
    const body = [header, ui.alertBox, ui.statusbar, ui.more, ui.log, ui.typing, ui.notice, buildComposer(), ui.announcer];
    ui.dialog = buildDialog();
    ui.teamDialog = buildTeamDialog();

    if (tile) {
      ui.root = h('section', { class: 'assisto-root assisto-tile assisto-chat', 'aria-labelledby': titleId }, body, ui.dialog, ui.teamDialog);
      ui.chat = ui.root;
    } else {
      const panelId = nextId('panel');
      const unreadId = nextId('unread');
      ui.badge = h('span', { class: 'assisto-badge', 'aria-hidden': 'true', hidden: true });
      ui.unreadText = h('span', { id: unreadId, class: 'assisto-sr' });
      ui.launcher = h('button', {
        type: 'button', class: 'assisto-launcher', 'aria-label': T.open, 'aria-expanded': 'false',
        'aria-controls': panelId, 'aria-describedby': unreadId, onclick: () => (S.open ? closePanel(true) : openPanel()),
      }, icon('chat'), ui.badge);
      ui.chat = h('div', {
        id: panelId, class: 'assisto-panel assisto-chat', role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': titleId, hidden: true,
      }, body);
      ui.chat.addEventListener('keydown', (e) => {
        if (e.key === 'Escape' && !e.defaultPrevented) {
          e.preventDefault();
          closePanel(true);
        }
      });
      ui.root = h('aside', { class: 'assisto-root assisto-bubble', 'aria-label': T.landmark }, ui.launcher, ui.unreadText, ui.chat, ui.dialog, ui.teamDialog);
    }
    ui.root.setAttribute('data-assisto-form', opts.form);
    ui.root.setAttribute('data-transport', tr.mode);
    ui.root.setAttribute('lang', opts.lang);
    // The notification sound may only start after a user gesture; make the AudioContext then.
    ui.root.addEventListener('pointerdown', unlockAudio);
    ui.root.addEventListener('keydown', unlockAudio);
    document.addEventListener('visibilitychange', scheduleRead);
    window.addEventListener('online', () => {
      if (tr.active && !tr.ready) {
        tr.attempt = 0;
        connect();
      }
    });
    target.append(ui.root);
    return true;
  }

  // A tile starts its session once it is on screen.
  function watchTile() {
    const show = () => {
      S.shown = true;
      ensureSession();
      scheduleRead();
    };
    if (!('IntersectionObserver' in window)) {
      show();
      return;
    }
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        io.disconnect();
        show();
      }
    });
    io.observe(ui.root);
  }

  function buildComposer() {
    const inputId = nextId('input');
    const counterId = nextId('counter');
    ui.input = h('textarea', {
      id: inputId, class: 'assisto-input', rows: 1, maxlength: S.cfg.maxText, placeholder: T.placeholder,
      enterkeyhint: 'send', 'aria-describedby': counterId, oninput: onInput, onkeydown: onInputKey,
    });
    ui.counter = h('span', { id: counterId, class: 'assisto-counter', hidden: true });
    const toolbar = h('div', { class: 'assisto-toolbar' }, buildEmoji());
    if (S.cfg.files) toolbar.append(...buildFiles());
    if (S.cfg.voice) toolbar.append(buildRecorder());
    toolbar.append(
      h('span', { class: 'assisto-spacer' }),
      ui.counter,
      h('button', { type: 'submit', class: 'assisto-btn assisto-btn--primary assisto-send', text: T.send }),
    );
    ui.composer = h('form', {
      class: 'assisto-composer', hidden: true,
      onsubmit: (e) => {
        e.preventDefault();
        sendText();
      },
    },
    h('label', { for: inputId, class: 'assisto-sr', text: T.inputLabel }),
    ui.input, ui.emojiGrid, ui.rec ? ui.rec.bar : null, toolbar);
    document.addEventListener('pointerdown', (e) => {
      if (!ui.emojiGrid.hidden && !ui.emojiGrid.contains(e.target) && !ui.emojiBtn.contains(e.target)) closeEmoji(false);
    }, true);
    return ui.composer;
  }

  function buildEmoji() {
    const gridId = nextId('emoji');
    ui.emojiBtn = h('button', {
      type: 'button', class: 'assisto-btn assisto-icon-btn assisto-emoji-btn', 'aria-label': T.emoji,
      'aria-expanded': 'false', 'aria-controls': gridId, onclick: () => (ui.emojiGrid.hidden ? openEmoji() : closeEmoji(true)),
    }, icon('smile'));
    ui.emojiGrid = h('div', {
      id: gridId, class: 'assisto-emoji-grid', role: 'group', 'aria-label': T.emojiGroup, hidden: true, onkeydown: onEmojiKey,
      onclick: (e) => {
        const b = e.target.closest('.assisto-emoji');
        if (!b) return;
        closeEmoji(false);
        insertText(b.getAttribute('data-emoji'));
      },
      onfocusout: (e) => {
        const to = e.relatedTarget;
        if (to && !ui.emojiGrid.contains(to) && to !== ui.emojiBtn) closeEmoji(false);
      },
    }, EMOJI.map((ch, i) => h('button', { type: 'button', class: 'assisto-emoji', 'aria-label': T.emojiNames[i], 'data-emoji': ch, text: ch })));
    return ui.emojiBtn;
  }

  function buildFiles() {
    const input = h('input', { type: 'file', multiple: true, class: 'assisto-file-input', hidden: true, tabindex: -1, 'aria-label': T.attach });
    input.addEventListener('change', () => {
      const files = Array.from(input.files || []);
      input.value = '';
      if (files.length) uploadFiles(files);
    });
    const btn = h('button', {
      type: 'button', class: 'assisto-btn assisto-icon-btn assisto-attach', 'aria-label': T.attach, onclick: () => input.click(),
    }, icon('clip'));
    return [btn, input];
  }

  function buildRecorder() {
    const btn = h('button', {
      type: 'button', class: 'assisto-btn assisto-icon-btn assisto-record', 'aria-pressed': 'false', 'aria-label': T.record, onclick: toggleRecording,
    }, icon('mic'));
    const timer = h('span', { class: 'assisto-rec-timer', role: 'timer' });
    const discard = h('button', {
      type: 'button', class: 'assisto-btn assisto-btn--secondary assisto-rec-discard', text: T.discard,
      onclick: () => {
        discardRecording();
        btn.focus();
      },
    });
    const send = h('button', { type: 'button', class: 'assisto-btn assisto-btn--primary assisto-rec-send', text: T.sendVoice, onclick: sendVoice });
    ui.rec = { btn, timer, send, bar: h('div', { class: 'assisto-recbar', hidden: true }, timer, discard, send) };
    return btn;
  }

  function buildDialog() {
    const titleId = nextId('dlg-title');
    const textId = nextId('dlg-text');
    ui.dialogCancel = h('button', { type: 'button', class: 'assisto-btn assisto-btn--secondary', text: T.cancel });
    ui.dialogConfirm = h('button', { type: 'button', class: 'assisto-btn assisto-btn--danger assisto-delete-confirm', text: T.deleteConfirm, onclick: deleteMyData });
    const dlg = h('dialog', { class: 'assisto-dialog', 'aria-labelledby': titleId, 'aria-describedby': textId },
      h('h2', { id: titleId, class: 'assisto-dialog-title', text: T.deleteData }),
      h('p', { id: textId, class: 'assisto-dialog-text', text: T.deleteText }),
      h('div', { class: 'assisto-dialog-actions' }, ui.dialogCancel, ui.dialogConfirm));
    ui.dialogCancel.addEventListener('click', () => dlg.close());
    // showModal() already makes the page inert; keep Tab inside the two buttons, too.
    dlg.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const first = ui.dialogCancel;
      const last = ui.dialogConfirm;
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    });
    dlg.addEventListener('close', () => {
      const to = dialogReturn;
      dialogReturn = null;
      if (!hiddenNow(to)) to.focus();
    });
    return dlg;
  }

  // ---------------------------------------------------------------------------------------
  // Views.

  // Shows what belongs to a phase; returns the notice paragraph, if the phase has one.
  // While no chat is open, the page hears at once (Server-Sent Events) whether a counsellor
  // can take one, and shows or hides the offer to chat accordingly.
  let availability = null;
  function watchAvailability(on) {
    if (!on) {
      if (availability) availability.close();
      availability = null;
      return;
    }
    if (availability || typeof EventSource !== 'function') return;
    availability = new EventSource(`${opts.base}/institutions/${encodeURIComponent(opts.inst)}/availability`);
    availability.onmessage = (e) => {
      let v = null;
      try {
        v = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (!v || typeof v.available !== 'boolean') return;
      const nextOpen = typeof v.next_open === 'string' ? v.next_open : null;
      const departments = normaliseDepartments(v.departments);
      const team = normaliseTeam(v.team);
      const choices = JSON.stringify([departments, team]) !== JSON.stringify([S.cfg.departments, S.cfg.team]);
      if (v.available === S.cfg.available && nextOpen === S.cfg.nextOpen && !choices) return;
      S.cfg.available = v.available;
      S.cfg.nextOpen = nextOpen;
      S.cfg.departments = departments;
      S.cfg.team = team;
      if (S.phase === 'choose' && v.available) {
        renderChooser(false); // keeps what the visitor picked, where it is still there
      } else if (S.phase === 'idle' || S.phase === 'unavailable' || S.phase === 'choose') {
        setPhase(v.available ? 'idle' : 'unavailable');
        if (v.available) ensureSession();
      }
    };
  }

  function setPhase(phase) {
    const hadFocus = ui.chat.contains(document.activeElement);
    S.phase = phase;
    watchAvailability(phase === 'idle' || phase === 'unavailable' || phase === 'choose');
    const chat = phase === 'chat';
    if (!chat) {
      closeEmoji(false);
      discardRecording();
    }
    ui.composer.hidden = !chat;
    ui.endBtn.hidden = !chat;
    ui.deleteBtn.hidden = !(S.token && (chat || phase === 'refused' || phase === 'ended'));
    ui.transcriptBtn.hidden = !(S.token && (chat || phase === 'ended'));
    ui.teamBtn.hidden = !(chat && opts.area === 'registered');
    ui.actions.hidden = ui.endBtn.hidden && ui.deleteBtn.hidden && ui.transcriptBtn.hidden && ui.teamBtn.hidden;
    ui.more.hidden = !S.more;
    const notice = phase === 'choose' ? renderChooser(true) : renderNotice(phase);
    // Keep keyboard focus in a sensible place when the focused control just disappeared.
    const active = document.activeElement;
    if (hadFocus && (hiddenNow(active) || !ui.chat.contains(active) || active === ui.title)) {
      if (notice) notice.focus();
      else if (chat && finePointer()) ui.input.focus();
      else ui.title.focus();
    } else if (notice && phase !== 'starting' && phase !== 'idle') {
      announce(notice.textContent);
    }
    return notice;
  }

  // "Nobody there", and when the service opens next, if it is outside its opening hours.
  function unavailableText() {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(S.cfg.nextOpen || '');
    if (!m) return T.unavailable;
    return t('nextOpen', { date: `${m[3]}.${m[2]}.${m[1]}`, time: `${m[4]}:${m[5]}` });
  }

  // Before an anonymous live chat starts: the department (where there are several) and
  // whom to talk to (the next free counsellor, or one of those proposed now).
  function needsChoice() {
    return opts.area === 'anonymous' && (S.cfg.departments.length > 1 || S.cfg.team.length > 0);
  }

  function renderChooser(fresh) {
    const cfg = S.cfg;
    const prev = S.choosing || {};
    const open = cfg.departments.filter((d) => d.available);
    const department = cfg.departments.length > 1
      ? (open.some((d) => d.id === prev.department) ? prev.department : (open[0] || {}).id || null)
      : null;
    const serves = (m) => !department || m.departments.length === 0 || m.departments.includes(department);
    const team = cfg.team.filter(serves);
    const counsellor = team.some((m) => m.id === prev.counsellor) ? prev.counsellor : '';
    S.choosing = { department, counsellor };
    const hadFocus = ui.notice.contains(document.activeElement);
    const group = nextId('choose');
    const radio = (name, value, checked, label, disabled, onpick) => {
      const id = nextId(name);
      return h('div', { class: 'assisto-choice' },
        h('input', { type: 'radio', id, name: `${group}-${name}`, value, checked, disabled, onchange: onpick }),
        h('label', { for: id, text: label }));
    };
    const titleId = nextId('choose-title');
    const form = h('form', {
      class: 'assisto-chooser', 'aria-labelledby': titleId,
      onsubmit: (e) => {
        e.preventDefault();
        S.choice = { department: S.choosing.department, counsellor: S.choosing.counsellor || null };
        S.choosing = null;
        S.phase = 'idle';
        ensureSession();
      },
    }, h('h3', { id: titleId, class: 'assisto-chooser-title', tabindex: -1, text: T.chooseTitle }));
    if (cfg.departments.length > 1) {
      form.append(h('fieldset', { class: 'assisto-fieldset' }, h('legend', { text: T.chooseDepartment }),
        cfg.departments.map((d) => radio('dept', d.id, d.id === department,
          d.available ? d.name : `${d.name} ${T.departmentClosed}`, !d.available,
          () => {
            S.choosing = { department: d.id, counsellor: S.choosing.counsellor };
            renderChooser(false);
          }))));
    }
    if (team.length > 0) {
      form.append(h('fieldset', { class: 'assisto-fieldset' }, h('legend', { text: T.chooseCounsellor }),
        radio('who', '', counsellor === '', T.nextFree, false, () => { S.choosing.counsellor = ''; }),
        team.map((m) => radio('who', m.id, m.id === counsellor, m.name, false, () => { S.choosing.counsellor = m.id; }))));
    }
    form.append(h('button', { type: 'submit', class: 'assisto-btn assisto-btn--primary assisto-start-chat', text: T.startChat }));
    // Re-rendering after a radio changed keeps focus on the same choice.
    const focusedValue = hadFocus && document.activeElement && document.activeElement.value;
    const focusedName = hadFocus && document.activeElement && document.activeElement.name;
    ui.notice.replaceChildren(form);
    ui.notice.hidden = false;
    if (focusedName) {
      const same = Array.from(form.querySelectorAll('input')).find((i) => i.value === focusedValue && i.name.endsWith(focusedName.slice(focusedName.lastIndexOf('-'))));
      if (same) same.focus();
    }
    return fresh ? form.querySelector('h3') : null;
  }

  // "Unser Team" (logged-in area): whom the client may write to, with their status.
  function statusText(st) {
    return { online: T.statusOnline, away: T.statusAway, busy: T.statusBusy }[st] || T.statusOffline;
  }

  async function openTeam() {
    let res;
    try {
      res = await api('GET', '/team');
    } catch (e) {
      fail(e);
      return;
    }
    const team = normaliseTeam(res && res.team);
    const list = h('ul', { class: 'assisto-team-list' }, team.map((m) => h('li', { class: 'assisto-team-member' },
      h('span', { class: 'assisto-team-name', text: m.name }), ' ',
      h('span', { class: `assisto-team-status assisto-status-${m.status === 'online' ? 'online' : 'other'}`, text: statusText(m.status) }),
      h('button', {
        type: 'button', class: 'assisto-btn assisto-btn--secondary assisto-write-to', text: T.writeTo,
        'aria-label': t('writeToLabel', { name: m.name }), onclick: (ev) => writeTo(m, ev.currentTarget),
      }))));
    ui.teamBody.replaceChildren(h('p', { class: 'assisto-dialog-text', text: T.teamIntro }),
      team.length ? list : h('p', { class: 'assisto-dialog-text', text: T.teamEmpty }));
    dialogReturn = ui.teamBtn;
    if (typeof ui.teamDialog.showModal === 'function') ui.teamDialog.showModal();
    else ui.teamDialog.setAttribute('open', '');
    ui.teamClose.focus();
  }

  async function writeTo(m, button) {
    // One request per press: a double click must not write twice.
    if (button.disabled) return;
    button.disabled = true;
    try {
      await api('POST', `/team/${encodeURIComponent(m.id)}`);
    } catch (e) {
      fail(e);
      return;
    } finally {
      button.disabled = false;
    }
    if (ui.teamDialog.open) ui.teamDialog.close();
    announce(t('wroteTo', { name: m.name }));
  }

  function buildTeamDialog() {
    const titleId = nextId('team-title');
    ui.teamBody = h('div', { class: 'assisto-team' });
    ui.teamClose = h('button', { type: 'button', class: 'assisto-btn assisto-btn--secondary assisto-team-close', text: T.close });
    const dlg = h('dialog', { class: 'assisto-dialog assisto-team-dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId, class: 'assisto-dialog-title', text: T.team }),
      ui.teamBody,
      h('div', { class: 'assisto-dialog-actions' }, ui.teamClose));
    ui.teamClose.addEventListener('click', () => (dlg.close ? dlg.close() : dlg.removeAttribute('open')));
    dlg.addEventListener('close', () => {
      const to = dialogReturn;
      dialogReturn = null;
      if (to && !hiddenNow(to)) to.focus();
    });
    return dlg;
  }

  function renderNotice(phase) {
    const text = {
      starting: T.starting, unavailable: unavailableText(), refused: S.refusedText, ended: T.ended,
      deleted: T.deleted, expired: T.expired, error: T.startFailed,
    }[phase];
    ui.notice.replaceChildren();
    ui.notice.hidden = !text;
    if (!text) return null;
    const p = h('p', { class: `assisto-notice-text assisto-${phase}`, tabindex: -1, text });
    ui.notice.append(p);
    if (phase === 'ended' || phase === 'deleted' || phase === 'expired') {
      ui.notice.append(h('button', { type: 'button', class: 'assisto-btn assisto-btn--primary assisto-new-chat', text: T.newChat, onclick: newChat }));
    } else if (phase === 'error') {
      ui.notice.append(h('button', { type: 'button', class: 'assisto-btn assisto-btn--primary assisto-try-again', text: T.tryAgain, onclick: retryStart }));
    }
    return p;
  }

  function showAlert(text) {
    ui.alert.textContent = text;
    ui.alertBox.hidden = false;
  }

  function clearAlert() {
    const hadFocus = ui.alertBox.contains(document.activeElement);
    ui.alert.textContent = '';
    ui.alertBox.hidden = true;
    if (hadFocus) (ui.composer.hidden ? ui.title : ui.input).focus();
  }

  function announce(text) {
    ui.announcer.textContent = text;
  }

  function setBusy(text) {
    ui.busy.textContent = text || '';
    ui.busy.hidden = !text;
  }

  function renderWaiting(waiting, queue) {
    let el = ui.statusbar.querySelector('.assisto-waiting');
    if (!waiting) {
      if (el) el.remove();
      return;
    }
    const q = queue && typeof queue === 'object' ? queue : {};
    let text = T.waiting;
    if (q.someone_coming === true) {
      text = T.someoneComing;
    } else if (Number.isInteger(q.position) && q.position > 0) {
      text += ` ${t('queue', { n: q.position })}`;
      if (Number.isInteger(q.estimated_wait_secs) && q.estimated_wait_secs > 0) {
        text += ` ${t('queueWait', { m: Math.max(1, Math.round(q.estimated_wait_secs / 60)) })}`;
      }
    }
    if (!el) {
      el = h('p', { class: 'assisto-waiting' });
      ui.statusbar.prepend(el);
    }
    if (el.textContent !== text) el.textContent = text;
  }

  function renderTyping(on) {
    const text = on ? (S.counsellorName ? t('typing', { name: S.counsellorName }) : T.typingAnon) : '';
    if (ui.typing.textContent !== text) ui.typing.textContent = text;
  }

  function renderMute() {
    ui.mute.setAttribute('aria-pressed', String(S.muted));
    ui.mute.setAttribute('aria-label', S.muted ? T.soundOn : T.soundOff);
    ui.mute.replaceChildren(icon(S.muted ? 'soundOff' : 'sound'));
  }

  function toggleMute() {
    S.muted = !S.muted;
    storageSet(MUTE_KEY, S.muted ? '1' : null);
    renderMute();
  }

  // ---------------------------------------------------------------------------------------
  // Bubble.

  function openPanel() {
    S.open = true;
    ui.chat.hidden = false;
    ui.launcher.setAttribute('aria-expanded', 'true');
    ui.root.classList.add('assisto-is-open');
    S.unread = 0;
    ui.badge.hidden = true;
    ui.unreadText.textContent = '';
    if (S.phase === 'idle') ensureSession();
    ui.log.scrollTop = ui.log.scrollHeight;
    if (!ui.composer.hidden && finePointer()) ui.input.focus();
    else ui.title.focus();
    scheduleRead();
  }

  function closePanel(returnFocus) {
    S.open = false;
    closeEmoji(false);
    ui.chat.hidden = true;
    ui.launcher.setAttribute('aria-expanded', 'false');
    ui.root.classList.remove('assisto-is-open');
    if (returnFocus) ui.launcher.focus();
  }

  function wantChat() {
    return opts.form === 'tile' ? S.shown : S.open;
  }

  // ---------------------------------------------------------------------------------------
  // Session.

  // Creates a session when the chat is first shown.
  async function ensureSession() {
    if (S.phase !== 'idle' || !wantChat()) return;
    if (!S.cfg.available) {
      setPhase('unavailable');
      return;
    }
    if (opts.area === 'registered' && !opts.token) {
      refuse(T.loginRequired);
      return;
    }
    if (!S.choice && needsChoice()) {
      setPhase('choose');
      return;
    }
    const gen = S.gen;
    setPhase('starting');
    const body = { area: opts.area, form: opts.form };
    if (opts.area === 'registered') body.token = opts.token;
    if (S.choice && S.choice.department) body.department = S.choice.department;
    if (S.choice && S.choice.counsellor) body.counsellor = S.choice.counsellor;
    try {
      const sess = await api('POST', `/institutions/${encodeURIComponent(opts.inst)}/sessions`, { auth: false, json: body });
      if (gen !== S.gen) return;
      if (typeof sess.session !== 'string' || !sess.session) throw new ApiError(500, null);
      saveSession(sess.session);
      await startChat(sess, gen);
    } catch (e) {
      if (gen !== S.gen) return;
      S.choice = null; // choose again (the chosen department may be gone)
      if (e.status === 403) refuse(errorText(e)); // blocked, or this form was switched off
      else startFailed(e);
    }
  }

  // Resumes the stored session after a reload.
  async function resume() {
    const gen = S.gen;
    setPhase('starting');
    try {
      const sess = await api('GET', '/session');
      if (gen !== S.gen) return;
      await startChat(sess, gen);
    } catch (e) {
      if (gen !== S.gen) return;
      if (e.status === 401) {
        // Expired or unknown: start afresh, as a new chat would.
        dropSession();
        setPhase(S.cfg.available ? 'idle' : 'unavailable');
        ensureSession();
      } else if (e.blocked) {
        refuse(e.message);
      } else {
        startFailed(e);
      }
    }
  }

  function startFailed(e) {
    showAlert(errorText(e));
    setPhase('error');
  }

  function retryStart() {
    clearAlert();
    if (S.token) {
      resume();
    } else {
      S.phase = 'idle';
      ensureSession();
    }
  }

  async function startChat(sess, gen) {
    const state = (sess && sess.state) || {};
    if (state.blocked) {
      refuse(null);
      return;
    }
    await loadHistory(gen);
    if (gen !== S.gen) return;
    setPhase('chat');
    applyState(state); // may end the chat right away
    if (S.phase === 'chat') {
      connect();
      scheduleRead();
    }
  }

  // Stops everything that belongs to the running session.
  function teardown() {
    S.gen += 1;
    stopTransport();
    timers.forEach(clearTimeout);
    timers.clear();
    S.typing = false;
    S.typingSentAt = 0;
    discardRecording();
    closeEmoji(false);
    renderWaiting(false);
    renderTyping(false);
    setBusy(null);
    ui.conn.hidden = true;
    ui.log.setAttribute('aria-busy', 'false');
  }

  function clearLog() {
    S.byId.forEach((r) => r.cleanup && r.cleanup());
    S.byId.clear();
    S.pending.clear();
    ui.log.replaceChildren();
    ui.log.setAttribute('aria-busy', 'false');
    Object.assign(S, {
      state: {}, newestId: null, oldestId: null, more: false, lastCounsellorId: null, lastReadSent: null, counsellorName: '',
    });
  }

  // The bridge no longer knows the session (401, socket close 4001).
  function sessionLost() {
    teardown();
    dropSession();
    clearLog();
    clearAlert();
    // A closed bubble simply starts a fresh chat the next time it is opened.
    setPhase(opts.form === 'bubble' && !S.open ? 'idle' : 'expired');
  }

  // Blocked, or no chat possible for another reason the bridge explained.
  function refuse(text) {
    teardown();
    S.refusedText = text || T.blocked;
    showAlert(S.refusedText);
    setPhase('refused');
  }

  function chatEnded() {
    if (S.phase !== 'chat') return;
    teardown();
    setPhase('ended');
  }

  async function endChat() {
    if (!window.confirm(T.confirmEnd)) return;
    try {
      await api('POST', '/end');
    } catch (e) {
      fail(e);
      return;
    }
    dropSession(); // the session ends with the chat
    if (S.phase === 'chat') chatEnded();
    else if (S.phase === 'ended') setPhase('ended');
  }

  function newChat() {
    teardown();
    dropSession();
    clearLog();
    clearAlert();
    S.choice = null;
    S.phase = 'idle';
    ensureSession();
  }

  function openDeleteDialog() {
    dialogReturn = ui.deleteBtn;
    if (typeof ui.dialog.showModal !== 'function') {
      if (window.confirm(T.deleteText)) deleteMyData();
      return;
    }
    ui.dialog.showModal();
    ui.dialogCancel.focus();
  }

  async function deleteMyData() {
    if (S.deleting) return;
    S.deleting = true;
    ui.dialogConfirm.setAttribute('aria-disabled', 'true');
    try {
      await api('POST', '/delete-my-data');
      teardown();
      dropSession();
      clearLog();
      clearAlert();
      dialogReturn = setPhase('deleted');
    } catch (e) {
      fail(e);
    } finally {
      S.deleting = false;
      ui.dialogConfirm.removeAttribute('aria-disabled');
      if (ui.dialog.open) ui.dialog.close();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Messages.

  async function loadHistory(gen) {
    const res = await api('GET', '/messages?limit=50');
    if (gen !== S.gen) return;
    const msgs = Array.isArray(res.messages) ? res.messages : [];
    quietly(() => msgs.forEach((m) => addServerMessage(m, { stream: true })));
    S.oldestId = msgs.length ? msgs[0].id : null;
    S.more = !!res.more && !!S.oldestId;
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  async function loadOlder() {
    if (S.loadingOlder || !S.oldestId) return;
    S.loadingOlder = true;
    const gen = S.gen;
    try {
      const res = await api('GET', `/messages?before=${encodeURIComponent(S.oldestId)}&limit=50`);
      if (gen !== S.gen) return;
      const msgs = Array.isArray(res.messages) ? res.messages : [];
      const frag = document.createDocumentFragment();
      for (const m of msgs) {
        if (!m || typeof m.id !== 'string' || S.byId.has(m.id)) continue;
        const r = renderMessage(m);
        S.byId.set(m.id, r);
        frag.append(r.el);
      }
      // Keep the messages the user is looking at in place.
      const log = ui.log;
      const fromBottom = log.scrollHeight - log.scrollTop;
      quietly(() => log.prepend(frag));
      log.scrollTop = log.scrollHeight - fromBottom;
      if (msgs.length) S.oldestId = msgs[0].id;
      S.more = !!res.more && msgs.length > 0;
      ui.more.hidden = !S.more;
      if (!S.more) log.focus();
      updateReadMarks();
    } catch (e) {
      if (gen === S.gen) fail(e);
    } finally {
      S.loadingOlder = false;
    }
  }

  // Inserts many messages without the log reading all of them out.
  function quietly(fn) {
    ui.log.setAttribute('aria-busy', 'true');
    fn();
    later(() => ui.log.setAttribute('aria-busy', 'false'), 100);
  }

  // o.stream: the message came in stream order (history or real time); o.live: it is new.
  function addServerMessage(m, o = {}) {
    if (!m || typeof m.id !== 'string' || !m.id) return;
    if (o.stream) {
      S.newestId = m.id;
      if (m.from !== 'me') S.lastCounsellorId = m.id;
    }
    if (m.from === 'counsellor' && m.sender_name) S.counsellorName = m.sender_name;
    if (S.byId.has(m.id)) return;
    const r = renderMessage(m);
    const pending = m.txn_id ? S.pending.get(m.txn_id) : null;
    if (pending) {
      S.pending.delete(m.txn_id);
      pending.el.replaceWith(r.el);
    } else {
      appendToLog(r.el, m.from === 'me');
    }
    S.byId.set(m.id, r);
    if (o.live && m.from === 'counsellor') notifyIncoming();
    updateReadMarks();
  }

  function appendToLog(el, scroll) {
    const log = ui.log;
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    log.append(el);
    if (atEnd || scroll) log.scrollTop = log.scrollHeight;
  }

  function removeMessage(id) {
    const r = S.byId.get(id);
    if (!r) return;
    S.byId.delete(id);
    if (r.cleanup) r.cleanup();
    const hadFocus = r.el.contains(document.activeElement);
    r.el.remove();
    if (hadFocus) ui.log.focus();
  }

  // Own messages up to the one the counsellor has read get a "read" marker.
  function updateReadMarks() {
    const upTo = S.state.read_up_to;
    if (!upTo || !S.byId.has(upTo)) return;
    const own = ui.log.querySelectorAll('.assisto-msg[data-from="me"][data-id]');
    let reached = false;
    for (let i = own.length - 1; i >= 0; i -= 1) {
      if (own[i].getAttribute('data-id') === upTo) reached = true;
      const status = own[i].querySelector('.assisto-msg-status');
      if (reached && status && !status.querySelector('.assisto-read')) status.append(h('span', { class: 'assisto-read', text: T.read }));
    }
  }

  function renderMessage(m) {
    const from = ['me', 'counsellor', 'system'].includes(m.from) ? m.from : 'system';
    const kind = typeof m.kind === 'string' ? m.kind : 'text';
    const ts = Number.isFinite(m.ts) ? m.ts : Date.now();
    const r = { m, el: null, cleanup: null };
    const meta = h('div', { class: 'assisto-msg-meta' },
      from === 'system' ? null : h('span', { class: 'assisto-msg-sender', text: from === 'me' ? T.you : m.sender_name || T.counsellor }),
      h('time', { class: 'assisto-msg-time', datetime: new Date(ts).toISOString(), text: fmtTime(ts) }));
    r.el = h('div', { class: `assisto-msg assisto-msg--${from}`, 'data-id': m.id, 'data-from': from, 'data-kind': kind },
      meta, renderBody(r, kind), from === 'me' ? h('div', { class: 'assisto-msg-status' }) : null);
    return r;
  }

  function renderBody(r, kind) {
    if (kind === 'phone') return renderPhone(r.m);
    if (kind === 'video') return renderVideo(r.m);
    if (kind === 'link') return renderLink(r.m);
    if (kind === 'file') return renderFile(r.m);
    if (kind === 'voice') return renderVoice(r);
    return textBody(r.m);
  }

  function textBody(m) {
    return h('p', { class: 'assisto-text', text: typeof m.text === 'string' ? m.text : '' });
  }

  function renderPhone(m) {
    if (typeof m.href !== 'string' || !/^tel:/i.test(m.href)) return textBody(m);
    let number = m.href.slice(4);
    try {
      number = decodeURIComponent(number);
    } catch (e) {
      /* show it as it is */
    }
    const label = typeof m.text === 'string' ? m.text.trim() : '';
    return h('div', { class: 'assisto-card assisto-card--phone' },
      h('p', { class: 'assisto-card-title', text: T.phoneTitle }),
      label && label !== number ? h('p', { class: 'assisto-text', text: label }) : null,
      h('a', { class: 'assisto-tel', href: m.href, text: number }));
  }

  function renderVideo(m) {
    let ok = false;
    try {
      ok = new URL(m.href).protocol === 'https:';
    } catch (e) {
      ok = false;
    }
    if (!ok) return textBody(m);
    return h('div', { class: 'assisto-card assisto-card--video' },
      h('p', { class: 'assisto-card-title', text: T.videoTitle }),
      m.text ? textBody(m) : null,
      h('a', { class: 'assisto-btn assisto-btn--primary assisto-video-link', href: m.href, target: '_blank', rel: 'noopener noreferrer' },
        T.openVideo, h('span', { class: 'assisto-sr', text: ` ${T.newWindow}` })));
  }

  function renderLink(m) {
    let url = null;
    try {
      url = new URL(m.href);
    } catch (e) {
      url = null;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) return textBody(m);
    return h('div', { class: 'assisto-card assisto-card--link' },
      h('p', { class: 'assisto-card-title', text: T.linkTitle }),
      h('p', { class: 'assisto-text', text: `${T.linkHost} ${url.host}` }),
      h('a', { class: 'assisto-btn assisto-btn--primary assisto-link', href: url.href, target: '_blank', rel: 'noopener noreferrer' },
        T.openLink, h('span', { class: 'assisto-sr', text: ` ${url.host} ${T.newWindow}` })));
  }

  function renderFile(m) {
    const f = m.file || {};
    const nameId = nextId('file');
    return h('div', { class: 'assisto-card assisto-card--file' },
      h('p', { id: nameId, class: 'assisto-file-name', text: f.name || T.file }),
      h('p', { class: 'assisto-file-size', text: fmtSize(f.size) }),
      mediaActions(m, nameId));
  }

  function mediaActions(m, labelId) {
    return h('div', { class: 'assisto-card-actions' },
      h('button', { type: 'button', class: 'assisto-btn assisto-btn--secondary assisto-download', 'aria-describedby': labelId, text: T.download, onclick: () => download(m) }),
      m.from === 'me'
        ? h('button', { type: 'button', class: 'assisto-btn assisto-btn--secondary assisto-delete', 'aria-describedby': labelId, text: T.delete, onclick: () => deleteOwn(m) })
        : null);
  }

  // A voice message: a custom player around an <audio> that gets the bytes as a blob: URL
  // (the media endpoint needs the session header, which <audio src> cannot send).
  function renderVoice(r) {
    const m = r.m;
    const labelId = nextId('voice');
    let audio = null;
    let loading = null;
    const known = (Number(m.file && m.file.duration_ms) || 0) / 1000;
    const total = () => (audio && Number.isFinite(audio.duration) && audio.duration > 0 ? audio.duration : known);

    const play = h('button', { type: 'button', class: 'assisto-btn assisto-icon-btn assisto-play', 'aria-label': T.play, 'aria-describedby': labelId }, icon('play'));
    const seek = h('input', { type: 'range', class: 'assisto-seek', min: 0, step: 1, value: 0, 'aria-label': T.position, 'aria-describedby': labelId });
    const time = h('span', { class: 'assisto-time', 'aria-hidden': 'true' });
    const speed = h('select', { class: 'assisto-speed', 'aria-label': T.speed },
      RATES.map((rate) => h('option', { value: rate, selected: rate === 1, text: fmtRate(rate) })));
    const volume = h('input', { type: 'range', class: 'assisto-volume', min: 0, max: 100, step: 10, value: 100, 'aria-label': T.volume });

    const showTime = (fromAudio) => {
      const cur = fromAudio && audio ? audio.currentTime : Number(seek.value);
      seek.max = String(Math.max(1, Math.ceil(total())));
      if (fromAudio) seek.value = String(Math.floor(cur));
      time.textContent = `${fmtDur(cur * 1000)} / ${fmtDur(total() * 1000)}`;
      seek.setAttribute('aria-valuetext', t('positionText', { cur: fmtDur(cur * 1000), total: fmtDur(total() * 1000) }));
    };
    const showPlaying = (on) => {
      play.setAttribute('aria-label', on ? T.pause : T.play);
      play.replaceChildren(icon(on ? 'pause' : 'play'));
    };
    const load = () => {
      if (!loading) {
        loading = fetchMedia(m).then((blob) => {
          const url = URL.createObjectURL(blob);
          audio = new Audio(url);
          audio.currentTime = Number(seek.value);
          audio.addEventListener('timeupdate', () => showTime(true));
          audio.addEventListener('loadedmetadata', () => showTime(true));
          audio.addEventListener('play', () => showPlaying(true));
          audio.addEventListener('pause', () => showPlaying(false));
          audio.addEventListener('ended', () => showPlaying(false));
          players.add(audio);
          r.cleanup = () => {
            audio.pause();
            players.delete(audio);
            URL.revokeObjectURL(url);
          };
          return audio;
        });
        loading.catch(() => {
          loading = null; // let the next click try again
        });
      }
      return loading;
    };

    play.addEventListener('click', async () => {
      try {
        const a = await load();
        if (!a.paused) {
          a.pause();
          return;
        }
        players.forEach((p) => p !== a && p.pause());
        a.playbackRate = Number(speed.value);
        a.volume = Number(volume.value) / 100;
        await a.play();
      } catch (e) {
        if (e instanceof ApiError) fail(e);
        else if (e && e.name !== 'AbortError') showAlert(T.playError);
      }
    });
    seek.addEventListener('input', () => {
      if (audio) audio.currentTime = Number(seek.value);
      showTime(false);
    });
    speed.addEventListener('change', () => {
      if (audio) audio.playbackRate = Number(speed.value);
    });
    volume.addEventListener('input', () => {
      if (audio) audio.volume = Number(volume.value) / 100;
    });
    showTime(false);

    return h('div', { class: 'assisto-card assisto-card--voice' },
      h('p', { id: labelId, class: 'assisto-card-title', text: known ? t('voiceTitle', { time: fmtDur(known * 1000) }) : T.voice }),
      h('div', { class: 'assisto-player' }, play, seek, time),
      h('div', { class: 'assisto-player-options' }, speed, h('span', { class: 'assisto-volume-wrap' }, icon('sound'), volume)),
      mediaActions(m, labelId));
  }

  // The path of a file's or voice message's bytes, relative to the API base.
  function mediaPath(m) {
    const match = /\/media\/([^/?#]+)$/.exec((m.file && m.file.url) || '');
    return `/media/${match ? match[1] : encodeURIComponent(m.id)}`;
  }

  function fetchMedia(m) {
    return api('GET', mediaPath(m), { blob: true, timeoutMs: 0 });
  }

  function saveBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name, hidden: true });
    ui.root.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000); // give the browser time to start the download
  }

  async function downloadTranscript() {
    try {
      saveBlob(await api('GET', '/transcript', { blob: true, timeoutMs: 0 }), T.transcriptFile);
    } catch (e) {
      fail(e);
    }
  }

  async function download(m) {
    try {
      const blob = await fetchMedia(m);
      const ext = (blob.type.split('/')[1] || 'webm').split(';')[0];
      saveBlob(blob, (m.file && m.file.name) || `${T.voiceFileName}.${ext}`);
    } catch (e) {
      fail(e);
    }
  }

  async function deleteOwn(m) {
    if (!window.confirm(T.confirmDeleteMsg)) return;
    try {
      await api('DELETE', `/messages/${encodeURIComponent(m.id)}`);
      removeMessage(m.id);
    } catch (e) {
      fail(e);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Sending.

  function sendText() {
    const text = ui.input.value.trim();
    if (!text || S.phase !== 'chat') return;
    stopTyping();
    ui.input.value = '';
    onInputChanged();
    const txn = newTxnId();
    const m = { txn_id: txn, text, ts: Date.now(), from: 'me', kind: 'text' };
    const p = { m, el: renderMessage(m).el };
    S.pending.set(txn, p);
    appendToLog(p.el, true);
    postText(txn);
  }

  // Shown at once as "sending"; the server's answer (or its echo on the stream, whichever
  // comes first) replaces it. A retry sends the same txn_id, so nothing is duplicated.
  async function postText(txn) {
    const p = S.pending.get(txn);
    if (!p) return;
    markPending(p, false);
    const gen = S.gen;
    try {
      const msg = await api('POST', '/messages', { json: { txn_id: txn, text: p.m.text } });
      if (gen === S.gen) addServerMessage(msg);
    } catch (e) {
      if (gen !== S.gen || !S.pending.has(txn)) return;
      markPending(p, true);
      fail(e);
    }
  }

  function markPending(p, failed) {
    p.el.setAttribute('data-pending', 'true');
    if (failed) p.el.setAttribute('data-failed', 'true');
    else p.el.removeAttribute('data-failed');
    const status = p.el.querySelector('.assisto-msg-status');
    if (!failed) {
      status.replaceChildren(h('span', { class: 'assisto-sending', text: T.sending }));
      return;
    }
    status.replaceChildren(
      h('span', { class: 'assisto-failed', text: `${T.notSent} ` }),
      h('button', {
        type: 'button', class: 'assisto-btn assisto-retry', text: T.retry,
        onclick: () => {
          ui.input.focus();
          postText(p.m.txn_id);
        },
      }),
    );
  }

  function onInputKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      sendText();
    }
  }

  function onInput() {
    onInputChanged();
    if (!ui.input.value.trim()) {
      stopTyping();
      return;
    }
    const now = Date.now();
    if (now - S.typingSentAt >= 3000) {
      S.typingSentAt = now;
      S.typing = true;
      sendTyping(true);
    }
    cancel(S.typingIdle);
    S.typingIdle = later(stopTyping, 5000);
  }

  // Grows the textarea with its text and shows the counter near the limit.
  function onInputChanged() {
    const input = ui.input;
    input.style.height = 'auto';
    input.style.height = `${input.scrollHeight + input.offsetHeight - input.clientHeight}px`;
    const left = S.cfg.maxText - input.value.length;
    const near = left <= Math.max(20, Math.round(S.cfg.maxText * 0.1));
    ui.counter.hidden = !near;
    ui.counter.textContent = !near ? '' : left > 0 ? t('charsLeft', { n: left }) : T.charsNone;
  }

  function stopTyping() {
    cancel(S.typingIdle);
    if (!S.typing) return;
    S.typing = false;
    S.typingSentAt = 0;
    sendTyping(false);
  }

  function sendTyping(typing) {
    if (S.phase !== 'chat') return;
    if (tr.ws && tr.ready && tr.ws.readyState === WebSocket.OPEN) {
      try {
        tr.ws.send(JSON.stringify({ type: 'typing', typing }));
        return;
      } catch (e) {
        /* fall back to HTTP */
      }
    }
    api('POST', '/typing', { json: { typing } }).catch(() => {
      /* best effort: at worst the counsellor misses a typing hint */
    });
  }

  function insertText(str) {
    const input = ui.input;
    const start = input.selectionStart;
    const end = input.selectionEnd;
    input.focus();
    if (input.value.length - (end - start) + str.length > S.cfg.maxText) return;
    input.setRangeText(str, start, end, 'end');
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }

  function openEmoji() {
    ui.emojiGrid.hidden = false;
    ui.emojiBtn.setAttribute('aria-expanded', 'true');
    ui.emojiGrid.querySelector('.assisto-emoji').focus();
  }

  function closeEmoji(returnFocus) {
    if (!ui.emojiGrid || ui.emojiGrid.hidden) return;
    ui.emojiGrid.hidden = true;
    ui.emojiBtn.setAttribute('aria-expanded', 'false');
    if (returnFocus) ui.emojiBtn.focus();
  }

  // Arrow keys move through the emoji grid; Escape closes it (and only it).
  function onEmojiKey(e) {
    if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      closeEmoji(true);
      return;
    }
    const buttons = Array.from(ui.emojiGrid.querySelectorAll('.assisto-emoji'));
    const i = buttons.indexOf(document.activeElement);
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: EMOJI_COLUMNS, ArrowUp: -EMOJI_COLUMNS, Home: -i, End: buttons.length }[e.key];
    if (step === undefined || i < 0) return;
    e.preventDefault();
    buttons[Math.min(buttons.length - 1, Math.max(0, i + step))].focus();
  }

  async function uploadFiles(files) {
    const { maxFiles, maxBytes } = S.cfg;
    const problems = [];
    if (files.length > maxFiles) problems.push(t('tooManyFiles', { n: maxFiles }));
    for (const f of files) {
      if (f.size > maxBytes) problems.push(t('fileTooLarge', { name: f.name, size: fmtSize(f.size), max: fmtSize(maxBytes) }));
    }
    if (problems.length) {
      showAlert(problems.join(' '));
      return;
    }
    const body = new FormData();
    files.forEach((f) => body.append('file', f, f.name));
    const gen = S.gen;
    setBusy(files.length === 1 ? t('uploadingOne', { name: files[0].name }) : t('uploadingMany', { n: files.length }));
    try {
      const res = await api('POST', '/files', { body, timeoutMs: 0 });
      if (gen === S.gen && Array.isArray(res.messages)) res.messages.forEach((m) => addServerMessage(m));
    } catch (e) {
      if (gen === S.gen) fail(e);
    } finally {
      if (gen === S.gen) setBusy(null);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Voice recording.

  async function toggleRecording() {
    if (rec.state === 'recording') {
      stopRecording();
      return;
    }
    if (rec.state !== 'idle') return;
    rec.state = 'starting'; // the permission prompt may take a while
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      rec.state = 'idle';
      showAlert(e && e.name === 'NotAllowedError' ? T.micDenied : T.micError);
      return;
    }
    if (rec.state !== 'starting' || S.phase !== 'chat') {
      stream.getTracks().forEach((track) => track.stop()); // discarded meanwhile
      return;
    }
    let recorder;
    try {
      recorder = new MediaRecorder(stream, { mimeType: VOICE_MIME });
      recorder.start();
    } catch (e) {
      stream.getTracks().forEach((track) => track.stop());
      rec.state = 'idle';
      showAlert(T.micError);
      return;
    }
    Object.assign(rec, { stream, recorder, chunks: [], startedAt: Date.now(), state: 'recording' });
    recorder.addEventListener('dataavailable', (e) => {
      if (rec.recorder === recorder && e.data && e.data.size) rec.chunks.push(e.data);
    });
    recorder.addEventListener('stop', () => {
      if (rec.recorder !== recorder || rec.state !== 'stopping') return;
      rec.blob = new Blob(rec.chunks, { type: VOICE_MIME.split(';')[0] });
      releaseMic();
      rec.state = 'review';
      renderRecorder();
      ui.rec.send.focus();
    });
    rec.tick = setInterval(renderRecorder, 500);
    renderRecorder();
  }

  function stopRecording() {
    clearInterval(rec.tick);
    rec.durationMs = Date.now() - rec.startedAt;
    rec.state = 'stopping';
    try {
      rec.recorder.stop(); // → the "stop" listener above
    } catch (e) {
      discardRecording();
    }
  }

  function discardRecording() {
    clearInterval(rec.tick);
    const recorder = rec.recorder;
    Object.assign(rec, { state: 'idle', recorder: null, chunks: [], blob: null });
    if (recorder && recorder.state !== 'inactive') {
      try {
        recorder.stop();
      } catch (e) {
        /* already stopped */
      }
    }
    releaseMic();
    renderRecorder();
  }

  function releaseMic() {
    if (rec.stream) rec.stream.getTracks().forEach((track) => track.stop());
    rec.stream = null;
  }

  function renderRecorder() {
    if (!ui || !ui.rec) return;
    const { btn, timer, send, bar } = ui.rec;
    const recording = rec.state === 'recording';
    if (btn.getAttribute('aria-pressed') !== String(recording)) {
      btn.setAttribute('aria-pressed', String(recording));
      btn.setAttribute('aria-label', recording ? T.stopRecord : T.record);
      btn.replaceChildren(icon(recording ? 'stop' : 'mic'));
    }
    btn.hidden = rec.state === 'review' || rec.state === 'sending';
    bar.hidden = !recording && btn.hidden === false;
    send.hidden = recording;
    timer.textContent = recording
      ? t('recording', { time: fmtDur(Date.now() - rec.startedAt) })
      : t('voiceReady', { time: fmtDur(rec.durationMs) });
  }

  async function sendVoice() {
    if (rec.state !== 'review' || !rec.blob) return;
    if (rec.blob.size > S.cfg.maxBytes) {
      showAlert(T.voiceTooLarge);
      return;
    }
    rec.state = 'sending';
    const gen = S.gen;
    setBusy(T.voiceSending);
    try {
      const m = await api('POST', `/voice?duration_ms=${Math.round(rec.durationMs)}`, { body: rec.blob, type: rec.blob.type, timeoutMs: 0 });
      if (gen !== S.gen) return;
      addServerMessage(m);
      discardRecording();
      ui.input.focus();
    } catch (e) {
      if (gen !== S.gen) return;
      rec.state = 'review'; // keep the recording for another try
      fail(e);
    } finally {
      if (gen === S.gen) setBusy(null);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Real time.

  function connect() {
    stopTransport();
    tr.active = true;
    if (tr.mode === 'ws' && typeof WebSocket === 'function') openSocket(tr.gen);
    else {
      tr.mode = 'poll';
      poll(tr.gen);
    }
    ui.root.setAttribute('data-transport', tr.mode);
  }

  function stopTransport() {
    tr.gen += 1;
    tr.active = false;
    tr.ready = false;
    cancel(tr.timer);
    clearInterval(tr.ping);
    if (tr.abort) tr.abort.abort();
    tr.abort = null;
    const ws = tr.ws;
    tr.ws = null;
    if (ws) {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onclose = null;
      try {
        ws.close(1000);
      } catch (e) {
        /* already closed */
      }
    }
  }

  function reconnectLater(ms) {
    const gen = tr.gen;
    tr.timer = later(() => {
      if (gen === tr.gen) connect();
    }, ms);
  }

  function openSocket(gen) {
    let ws;
    try {
      ws = new WebSocket(`${opts.base.replace(/^http/i, 'ws')}/ws`);
    } catch (e) {
      socketClosed(gen, 0);
      return;
    }
    tr.ws = ws;
    ws.onopen = () => {
      tr.lastFrameAt = Date.now();
      ws.send(JSON.stringify({ type: 'auth', session: S.token, after: S.newestId }));
    };
    ws.onmessage = (ev) => {
      if (gen !== tr.gen) return;
      tr.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (frame && frame.type === 'ready') {
        Object.assign(tr, { ready: true, readyAt: Date.now(), failures: 0 });
        ui.conn.hidden = true;
        startPing(gen);
        applyState(frame.state);
      } else {
        handleFrame(frame);
      }
    };
    ws.onclose = (ev) => socketClosed(gen, ev.code);
  }

  function socketClosed(gen, code) {
    if (gen !== tr.gen) return;
    const wasReady = tr.ready;
    tr.ws = null;
    tr.ready = false;
    clearInterval(tr.ping);
    if (code === 4003) {
      refuse(null);
      return;
    }
    if (code === 4001) {
      sessionLost();
      return;
    }
    if (!wasReady) {
      // Failing twice before "ready" means the socket does not get through: poll instead.
      tr.failures += 1;
      if (tr.failures >= 2) {
        tr.mode = 'poll';
        connect();
        return;
      }
    } else {
      if (Date.now() - tr.readyAt > 30000) tr.attempt = 0; // it was a good connection
      ui.conn.hidden = false;
    }
    reconnectLater(backoff(tr.attempt));
    tr.attempt += 1;
  }

  // Pings keep proxies from closing an idle socket; a socket silent for a minute is dead.
  function startPing(gen) {
    clearInterval(tr.ping);
    tr.ping = setInterval(() => {
      const ws = tr.ws;
      if (gen !== tr.gen || !ws) return;
      if (Date.now() - tr.lastFrameAt > 60000) {
        ws.onclose = null;
        try {
          ws.close();
        } catch (e) {
          /* already closed */
        }
        socketClosed(gen, 0);
        return;
      }
      try {
        ws.send(JSON.stringify({ type: 'ping' }));
      } catch (e) {
        /* the close event follows */
      }
    }, 25000);
  }

  async function poll(gen) {
    let failures = 0;
    while (gen === tr.gen) {
      const ctl = new AbortController();
      tr.abort = ctl;
      const after = S.newestId ? `&after=${encodeURIComponent(S.newestId)}` : '';
      try {
        const res = await api('GET', `/events?timeout=25${after}`, { signal: ctl.signal, timeoutMs: 40000 });
        if (gen !== tr.gen) return;
        failures = 0;
        tr.ready = true;
        ui.conn.hidden = true;
        for (const frame of Array.isArray(res.events) ? res.events : []) {
          handleFrame(frame);
          if (gen !== tr.gen) return;
        }
        applyState(res.state);
      } catch (e) {
        if (gen !== tr.gen) return;
        if (e.status === 401) {
          sessionLost();
          return;
        }
        if (e.blocked) {
          refuse(e.message);
          return;
        }
        tr.ready = false;
        ui.conn.hidden = false;
        // If the transport is stopped meanwhile, this promise is simply never resolved.
        await new Promise((resolve) => {
          tr.timer = later(resolve, e.retryAfterMs || backoff(failures));
        });
        failures += 1;
      }
    }
  }

  function handleFrame(frame) {
    if (!frame || typeof frame !== 'object') return;
    if (frame.type === 'message') addServerMessage(frame.message, { stream: true, live: true });
    else if (frame.type === 'state') applyState(frame.state);
    else if (frame.type === 'redacted') removeMessage(frame.id);
  }

  function applyState(state) {
    if (!state || typeof state !== 'object' || S.phase !== 'chat') return;
    S.state = state;
    if (state.blocked) {
      refuse(null);
      return;
    }
    if (state.ended) {
      chatEnded();
      return;
    }
    renderWaiting(!!state.waiting, state.queue);
    renderTyping(!!state.counsellor_typing);
    updateReadMarks();
  }

  // ---------------------------------------------------------------------------------------
  // Attention: read receipts, unread count, sound.

  function chatVisible() {
    return document.visibilityState === 'visible' && wantChat();
  }

  function scheduleRead() {
    if (S.phase !== 'chat' || !chatVisible() || !S.lastCounsellorId || S.lastCounsellorId === S.lastReadSent) return;
    cancel(S.readTimer);
    S.readTimer = later(() => {
      const id = S.lastCounsellorId;
      S.lastReadSent = id;
      api('POST', '/read', { json: { up_to: id } }).catch(() => {
        if (S.lastReadSent === id) S.lastReadSent = null; // best effort; try again next time
      });
    }, 1000);
  }

  function notifyIncoming() {
    const closed = opts.form === 'bubble' && !S.open;
    if (closed) {
      S.unread += 1;
      ui.badge.textContent = S.unread > 9 ? '9+' : String(S.unread);
      ui.badge.hidden = false;
      ui.unreadText.textContent = S.unread === 1 ? T.unreadOne : t('unreadMany', { n: S.unread });
    }
    if (closed || document.hidden) beep();
    scheduleRead();
  }

  function unlockAudio() {
    if (audioCtx) return;
    const Ctx = window.AudioContext || window.webkitAudioContext;
    try {
      audioCtx = Ctx ? new Ctx() : null;
    } catch (e) {
      audioCtx = null;
    }
  }

  // A short, soft two-tone beep, made with WebAudio (no audio file).
  function beep() {
    if (S.muted || !audioCtx) return;
    try {
      if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
      const t0 = audioCtx.currentTime;
      [[880, 0], [1175, 0.12]].forEach(([freq, at]) => {
        const osc = audioCtx.createOscillator();
        const gain = audioCtx.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, t0 + at);
        gain.gain.exponentialRampToValueAtTime(0.15, t0 + at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t0 + at + 0.18);
        osc.connect(gain);
        gain.connect(audioCtx.destination);
        osc.start(t0 + at);
        osc.stop(t0 + at + 0.2);
      });
    } catch (e) {
      /* the sound is only a nicety */
    }
  }

  boot().catch(() => {
    /* never let an unexpected failure reach the host page */
  });
})();
