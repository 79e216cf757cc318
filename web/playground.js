/*
 * playground.js: the Mercure playground page (playground.html). Subscribes with EventSource on
 * the hub of this page (the subscriber token, when asked for, goes in the `authorization` query
 * parameter, since EventSource cannot send headers), publishes with fetch() and the publisher
 * token in an Authorization header, and lists every received event. In --dev / --demo mode the
 * tokens come from /.well-known/ssehub/dev-token; otherwise the user pastes them.
 */
(function () {
  'use strict';
  var HUB = '/.well-known/mercure';
  var es = null;
  var count = 0;

  function $(id) { return document.getElementById(id); }

  function setState(s) {
    var b = $('sub-state');
    b.textContent = s;
    b.setAttribute('data-state', s);
  }

  function note(text) {
    var n = $('token-note');
    n.textContent = text;
    n.hidden = !text;
  }

  function addEvent(ev) {
    count++;
    $('ev-count').textContent = String(count);
    var li = document.createElement('li');
    li.className = 'event';
    var meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = 'id ' + (ev.lastEventId || '(none)') + ' · event ' + ev.type;
    var pre = document.createElement('pre');
    pre.className = 'data';
    pre.textContent = ev.data;
    li.appendChild(meta);
    li.appendChild(pre);
    li.setAttribute('data-id', ev.lastEventId || '');
    li.setAttribute('data-type', ev.type);
    $('events').insertBefore(li, $('events').firstChild);
  }

  function subscribe() {
    unsubscribe();
    var url = new URL(HUB, window.location.href);
    $('sub-topics').value.split('\n').forEach(function (t) {
      t = t.trim();
      if (t) url.searchParams.append('topic', t);
    });
    var last = $('sub-last').value.trim();
    if (last) url.searchParams.append('lastEventID', last);
    if ($('sub-auth').checked && $('tok-sub').value.trim())
      url.searchParams.append('authorization', $('tok-sub').value.trim());
    $('sub-url').textContent = 'GET ' + url.pathname + url.search.replace(/authorization=[^&]+/, 'authorization=…');
    setState('CONNECTING');
    es = new EventSource(url.toString());
    es.onopen = function () { setState('OPEN'); };
    es.onerror = function () {
      setState(es && es.readyState === EventSource.CLOSED ? 'CLOSED' : 'CONNECTING');
    };
    es.onmessage = addEvent;
    /* Named events (publish "type") arrive as their own event types: listen to the usual ones
       and to whatever type the publish form used last. */
    ['myEvent', 'update'].forEach(function (t) { es.addEventListener(t, addEvent); });
    $('sub-go').textContent = 'Resubscribe';
    $('sub-stop').disabled = false;
  }

  function unsubscribe() {
    if (es) es.close();
    es = null;
    setState('CLOSED');
    $('sub-stop').disabled = true;
    $('sub-go').textContent = 'Subscribe';
  }

  function publish() {
    var body = new URLSearchParams();
    body.append('topic', $('pub-topic').value);
    body.append('data', $('pub-data').value);
    var type = $('pub-type').value.trim();
    if (type) {
      body.append('type', type);
      if (es) es.addEventListener(type, addEvent);
    }
    if ($('pub-id').value.trim()) body.append('id', $('pub-id').value.trim());
    if ($('pub-private').checked) body.append('private', 'on');
    var headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
    var tok = $('tok-pub').value.trim();
    if (tok) headers.Authorization = 'Bearer ' + tok;
    var out = $('pub-result');
    out.textContent = '…';
    return fetch(HUB, { method: 'POST', headers: headers, body: body.toString() })
      .then(function (r) {
        return r.text().then(function (t) {
          out.setAttribute('data-ok', r.ok ? 'true' : 'false');
          out.textContent = r.status + ' ' + t.trim();
        });
      })
      .catch(function (e) {
        out.setAttribute('data-ok', 'false');
        out.textContent = 'network error: ' + e;
      });
  }

  function loadTokens() {
    return fetch('/.well-known/ssehub/dev-token', { cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.json();
      })
      .then(function (j) {
        $('tok-pub').value = j.publisher || '';
        $('tok-sub').value = j.subscriber || '';
        note('');
        document.body.setAttribute('data-tokens', 'dev');
      })
      .catch(function () {
        note('No development tokens here (the hub runs without --dev/--demo): paste a publisher ' +
             'token to publish, and a subscriber token to receive private updates.');
        document.body.setAttribute('data-tokens', 'none');
      });
  }

  $('sub-form').addEventListener('submit', function (e) { e.preventDefault(); subscribe(); });
  $('sub-stop').addEventListener('click', unsubscribe);
  $('pub-form').addEventListener('submit', function (e) { e.preventDefault(); publish(); });
  if (typeof window.EventSource !== 'function') {
    note('This browser has no EventSource: subscribing is not possible here.');
    return;
  }
  loadTokens();
  window.playground = { subscribe: subscribe, unsubscribe: unsubscribe, publish: publish };
})();
