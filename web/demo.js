/* demo.js: the shared script of ssehub's EventSource demo pages (clock.html, oneshot.html).
 *
 * It opens one EventSource, shows its state (CONNECTING / OPEN / CLOSED, from onopen, onerror
 * and readyState), appends every message with its id, listens for the named event "myEvent"
 * with addEventListener, and says so plainly when the browser has no EventSource.
 *
 * The stream URL is, in order: the page's ?src= parameter (a full URL or path), ?topic= (a
 * Mercure topic on the hub's /.well-known/mercure, or on ?hub=), the <body data-src>, "/clock".
 *
 * For the browser tests, everything seen is also kept in window.demo:
 *   { src, supported, state, states: [{state, t}], opens, openTimes: [t],
 *     messages: [{id, data, type, t}], myEvents: [{id, data, t}] }
 *   (t = ms since page load; lists keep the last 1000)
 */
(function () {
  'use strict';

  var STATES = ['CONNECTING', 'OPEN', 'CLOSED'];
  var KEEP = 1000; /* entries kept in window.demo lists */
  var SHOW = 200; /* rows kept in the visible log */

  function $(id) { return document.getElementById(id); }
  function now() { return Math.round(performance.now()); }
  function push(list, item) {
    list.push(item);
    if (list.length > KEEP) list.shift();
  }
  function setText(id, text) {
    var el = $(id);
    if (el) el.textContent = text;
  }

  function streamUrl() {
    var q = new URLSearchParams(location.search);
    if (q.get('src')) return q.get('src');
    if (q.get('topic')) {
      return (q.get('hub') || '/.well-known/mercure') + '?topic=' + encodeURIComponent(q.get('topic'));
    }
    return document.body.getAttribute('data-src') || '/clock';
  }

  /* "2026-11-21T05:15:10.123Z" -> local wall-clock time; anything else is shown as it is. */
  function showTime(data) {
    var d = /^\d{4}-\d\d-\d\dT/.test(data) ? new Date(data) : null;
    if (d && !isNaN(d.getTime())) {
      setText('now', d.toLocaleTimeString([], { hour12: false }));
      setText('now-full', data + ' (server, UTC)');
    } else {
      setText('now', data.length > 24 ? data.slice(0, 24) + '…' : data);
      setText('now-full', '');
    }
    var panel = $('now-panel');
    if (panel) {
      panel.classList.remove('flash');
      void panel.offsetWidth; /* restart the animation */
      panel.classList.add('flash');
    }
  }

  function logRow(cls, id, type, text) {
    var log = $('log');
    if (!log) return;
    var empty = log.querySelector('.empty');
    if (empty) empty.remove();
    var li = document.createElement('li');
    if (cls) li.className = cls;
    var a = document.createElement('span');
    a.className = 'id';
    a.textContent = id.length > 9 ? '…' + id.slice(-8) : id; /* e.g. a hub's urn:uuid: ids */
    if (id.length > 9) a.title = id;
    var b = document.createElement('span');
    b.className = 'type';
    b.textContent = type;
    var c = document.createElement('span');
    c.className = 'data';
    c.textContent = text;
    li.append(a, b, c);
    log.prepend(li);
    while (log.children.length > SHOW) log.lastChild.remove();
  }

  function start() {
    var demo = {
      src: streamUrl(),
      supported: typeof window.EventSource === 'function',
      state: 'CONNECTING',
      states: [],
      opens: 0,
      openTimes: [],
      messages: [],
      myEvents: []
    };
    window.demo = demo;
    var shown = demo.src;
    try { shown = decodeURIComponent(demo.src); } catch (e) { /* show it as it is */ }
    setText('src', shown);
    var topic = new URLSearchParams(location.search).get('topic');
    var note = $('source-note');
    if (note && topic) {
      note.textContent = 'This page is fed by the Mercure hub: topic ' + topic +
        '. The hub chooses the ids (often urn:uuid: strings) and the event types.';
      note.hidden = false;
    }

    var badge = $('state');
    function setState(state) {
      if (state === demo.state && demo.states.length) return;
      demo.state = state;
      push(demo.states, { state: state, t: now() });
      if (badge) {
        badge.textContent = state;
        badge.setAttribute('data-state', state);
      }
      logRow('state', '', 'state', state);
    }

    if (!demo.supported) {
      var warn = $('unsupported');
      if (warn) warn.hidden = false;
      setState('UNSUPPORTED');
      var tb = $('toggle');
      if (tb) tb.disabled = true;
      return;
    }

    var es = null;
    var poll = 0;

    function open() {
      es = new EventSource(demo.src);
      setState(STATES[es.readyState]);
      es.onopen = function () {
        demo.opens++;
        push(demo.openTimes, now());
        setText('opens', String(demo.opens));
        setState('OPEN');
      };
      es.onerror = function () {
        /* readyState tells reconnecting (CONNECTING) from given up (CLOSED). */
        setState(STATES[es.readyState]);
      };
      es.onmessage = function (ev) {
        push(demo.messages, { id: ev.lastEventId, data: ev.data, type: ev.type, t: now() });
        setText('count', String(demo.messages.length));
        setText('last-id', ev.lastEventId || '(none)');
        showTime(ev.data);
        logRow('', ev.lastEventId, ev.type, ev.data);
      };
      es.addEventListener('myEvent', function (ev) {
        push(demo.myEvents, { id: ev.lastEventId, data: ev.data, t: now() });
        setText('my-count', String(demo.myEvents.length));
        setText('my-last', ev.data);
        logRow('named', ev.lastEventId, 'myEvent', ev.data);
      });
      /* readyState can change without an event (e.g. close()); keep the badge honest. */
      clearInterval(poll);
      poll = setInterval(function () { setState(STATES[es.readyState]); }, 250);
    }

    var toggle = $('toggle');
    if (toggle) {
      toggle.addEventListener('click', function () {
        if (es && es.readyState !== 2) {
          es.close();
          setState('CLOSED');
          toggle.textContent = 'Reconnect';
        } else {
          toggle.textContent = 'Close';
          open();
        }
      });
    }
    open();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
