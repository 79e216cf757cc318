#!/usr/bin/env python3
"""test_draft08.py: `ssehub serve` against draft-08 as it stands at the head of dunglas/mercure
(commit recorded in docs/MERCURE.md), one case per requirement the hub changed for it, over real
HTTP (python3 stdlib only; the hub process, tokens and the SSE reader come from test_hub.py).

Each case states the rule in our words. Every case failed on the hub before the change that
brought it to the head of the draft (checked against a build of the previous main). The last
cases check that a draft-07-only hub behaves as before.
Usage: test_draft08.py PATH/TO/ssehub [test-name-substring]
"""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hub as th  # noqa: E402  (the hub process, requests, tokens, the Sub reader)
from test_hub import KEY, Hub, Sub, check, publish, q, request, tok07, tok08, token  # noqa: E402

ISS = "https://issuer.test"


def aud(h):
    return "http://127.0.0.1:%d/.well-known/mercure" % h.port  # the default resource identifier


def t8(h, actions=("publish", "subscribe"), topics=None, typ="mercure", **kw):
    """A token for cases whose subject is not the token's shape: the earlier detail type (an
    alias the hub keeps), so that each case also ran on the hub before the change and failed
    there for its own reason only."""
    return tok08(list(actions), topics or [{"match": "*"}], aud=aud(h), typ=typ, **kw)


def datas(sub, n, timeout=2.0):
    return [e["data"] for e in sub.events(n, timeout)]


# ---------------------------------------------------------------- subscription

def t_matcher_parameter_names(h):
    """`match_exact` and `match_urlpattern` select the two matcher types; the earlier snapshot's
    `matchExact` / `matchURLPattern` stay as aliases; any other name in the `match` namespace
    (case-sensitive) is a 400."""
    for name in ("match_regex", "match_URLPattern", "Match_exact", "matchurlpattern"):
        s = Sub(h, q(**{name: "/x"}))  # no such matcher type (names are case-sensitive): 400
        check(s.status == 400, (name, s.status))
        s.close()
    subs = [Sub(h, q(match_exact="/n/exact")), Sub(h, q(match_urlpattern="/n/p/:id")),
            Sub(h, q(matchExact="/n/exact")), Sub(h, q(matchURLPattern="/n/p/:id"))]
    check([s.status for s in subs] == [200] * 4, [s.status for s in subs])
    tok = t8(h)
    publish(h, {"topic": "/n/exact", "data": "e"}, tok=tok)
    publish(h, {"topic": "/n/p/7", "data": "p"}, tok=tok)
    got = [datas(s, 1) for s in subs]
    check(got == [["e"], ["p"], ["e"], ["p"]], got)
    for s in subs:
        s.close()


def t_format_characters_refused(h):
    """Topics and matcher values must not carry Unicode format characters (category Cf, e.g.
    U+200B ZERO WIDTH SPACE, U+202E RIGHT-TO-LEFT OVERRIDE): 400."""
    s = Sub(h, q(match="/cf\u200b"))
    check(s.status == 400, s.status)
    s.close()
    for fields in ({"topic": "/cf\u202e"}, {"topic": "/ok", "id": "a\u2066b"},
                   {"topic": "/ok", "type": "t\ufeff"}):
        st, _, body = publish(h, fields, tok=t8(h))
        check(st == 400, (fields, st, body))
    st, _, _ = publish(h, {"topic": "/cf/\u00e9t\u00e9"}, tok=t8(h))  # letters are fine
    check(st == 200, st)


# ---------------------------------------------------------------- publication

def t_alternate_topics(h):
    """A draft-08 publish may carry several `topic` fields: subscribers of any one of them get
    the update once."""
    s = Sub(h, q(match="/alt/b"))
    st, _, body = publish(h, {"topic": ["/alt/a", "/alt/b"], "data": "alt"}, tok=t8(h))
    check(st == 200, (st, body))
    check(datas(s, 2, 1.0) == ["alt"], "alternate topic not delivered once")
    s.close()


def t_reserved_values_400(h):
    """topic `*` (the wildcard), type `mercure` (the hub's own events), id `earliest` (the
    replay cursor) and topics in the hub's namespace are refused with 400 whatever the token."""
    for fields in ({"topic": "*"}, {"topic": ["/ok", "*"]}, {"topic": "/ok", "type": "mercure"},
                   {"topic": "/ok", "id": "earliest"},
                   {"topic": "/.well-known/mercure/subscriptions/exact/x/y"},
                   {"topic": "https://other.example/.well-known/%6Dercure/x"}):
        st, hd, body = publish(h, fields, tok=t8(h))
        check(st == 400, (fields, st, body))


# ---------------------------------------------------------------- authorization

def t_authorization_detail_type(h):
    """Grants come from details of type https://mercure.rocks/authorization-detail with
    `match_type` `exact` / `urlpattern`; the earlier `type: "mercure"` + `matchType` shape stays
    as an alias; other detail types grant nothing."""
    a = aud(h)
    new = tok08(["publish"], [{"match": "/ad/:id", "match_type": "urlpattern"}], aud=a)
    old = tok08(["publish"], [{"match": "/ad/:id", "matchType": "URLPattern"}], aud=a,
                typ="mercure")
    other = tok08(["publish"], [{"match": "*"}], aud=a, typ="https://other.example/detail")
    check(publish(h, {"topic": "/ad/1"}, tok=new)[0] == 200, "new shape refused")
    check(publish(h, {"topic": "/ad/1"}, tok=old)[0] == 200, "old shape refused")
    check(publish(h, {"topic": "/zz"}, tok=new)[0] == 403, "outside the pattern")
    check(publish(h, {"topic": "/ad/1"}, tok=other)[0] == 403, "a foreign detail type granted")
    # an exact matcher named explicitly, and the default (no match_type) is exact
    ex = tok08(["publish"], [{"match": "/ad/:id", "match_type": "exact"}, {"match": "/ad2"}], aud=a)
    check(publish(h, {"topic": "/ad/:id"}, tok=ex)[0] == 200, "exact")
    check(publish(h, {"topic": "/ad/1"}, tok=ex)[0] == 403, "exact matched as a pattern")
    check(publish(h, {"topic": "/ad2"}, tok=ex)[0] == 200, "default match_type")


def t_unknown_match_type_invalid(h):
    """A `match_type` the hub does not support (case-sensitive) invalidates the whole token."""
    for mt in ("regex", "URLPattern", "Exact"):
        tok = tok08(["publish"], [{"match": "*"}, {"match": "/x", "match_type": mt}], aud=aud(h))
        st, hd, _ = publish(h, {"topic": "/x"}, tok=tok)
        check(st == 401 and 'error="invalid_token"' in hd.get("www-authenticate", ""), (mt, st))


def t_unknown_action_ignored(h):
    """An action the hub does not know grants nothing and leaves the token valid."""
    tok = tok08(["publish", "delete"], [{"match": "/ua"}], aud=aud(h))
    check(publish(h, {"topic": "/ua"}, tok=tok)[0] == 200, "token refused for an unknown action")
    only = tok08(["delete"], [{"match": "*"}], aud=aud(h))
    st, hd, _ = publish(h, {"topic": "/ua"}, tok=only)
    check(st == 403 and "insufficient_scope" in hd.get("www-authenticate", ""), st)


def t_iss_required(h, hb):
    """A draft-08 token must carry `iss`, and it must be the configured issuer: 401 otherwise
    (h has --issuer; hb has none and still wants the claim)."""
    for hub in (h, hb):
        st, hd, _ = publish(hub, {"topic": "/iss"}, tok=t8(hub, iss=None))  # no iss
        check(st == 401 and "invalid_token" in hd.get("www-authenticate", ""), ("no iss", st))
        check(publish(hub, {"topic": "/iss"}, tok=t8(hub))[0] == 200, "with iss")
    check(publish(h, {"topic": "/iss"}, tok=t8(h, iss="https://evil.example"))[0] == 401,
          "wrong iss accepted")


def t_token_in_url_refused(h):
    """No token in URLs: the `access_token` query parameter is refused (400, challenge with
    error="invalid_request"), for subscribers, publishers and the subscriptions API alike."""
    tok = t8(h)
    s = Sub(h, q(match="/u", access_token=tok))
    check(s.status == 400 and 'error="invalid_request"' in s.headers.get("www-authenticate", ""),
          (s.status, s.headers))
    s.close()
    st, hd, _ = request(h, "POST", "/.well-known/mercure?" + q(access_token=tok), {"topic": "/u"})
    check(st == 400 and 'error="invalid_request"' in hd.get("www-authenticate", ""), (st, hd))
    st, _, _ = request(h, "GET", "/.well-known/mercure/subscriptions?" + q(access_token=tok))
    check(st == 400, st)


def t_cookie_name(h):
    """The cookie draft-08 recommends, `__Secure-mercure_access_token`, carries the token (the
    header wins when both are present)."""
    sub = tok08(["subscribe"], [{"match": "/ck"}], aud=aud(h))
    s = Sub(h, q(match="/ck"), {"Cookie": "__Secure-mercure_access_token=" + sub})
    check(s.status == 200, s.status)
    publish(h, {"topic": "/ck", "data": "private", "private": "on"}, tok=t8(h))
    check(datas(s, 1) == ["private"], "cookie token not used")
    s.close()


# ---------------------------------------------------------------- reconciliation

def t_mercure_last_event_id(h):
    """With Last-Event-ID or last_event_id, the response carries Mercure-Last-Event-ID: the id
    before the first event sent, or `earliest` (unknown id, or `earliest` asked)."""
    tok = t8(h)
    publish(h, {"topic": "/mle", "id": "urn:mle:1"}, tok=tok)
    publish(h, {"topic": "/mle", "id": "urn:mle:2"}, tok=tok)
    s = Sub(h, q(match="/mle", last_event_id="urn:mle:1"))
    check(s.headers.get("mercure-last-event-id") == "urn:mle:1", s.headers)
    check([e["id"] for e in s.events(1)] == ["urn:mle:2"], "replay")
    s.close()
    s = Sub(h, q(match="/mle"), {"Last-Event-ID": "urn:mle:unknown"})
    check(s.headers.get("mercure-last-event-id") == "earliest", s.headers)
    s.close()
    s = Sub(h, q(match="/mle", last_event_id="earliest"))
    check(s.headers.get("mercure-last-event-id") == "earliest", s.headers)
    s.close()
    s = Sub(h, q(match="/mle"))
    check("mercure-last-event-id" not in s.headers, "sent without a cursor asked")
    s.close()


def t_duplicate_id_earliest_copy(h):
    """An id published twice: Last-Event-ID resolves to its earliest copy, and everything after
    it is sent, the later copy included."""
    tok = t8(h)
    for i, d in ((1, "first"), (2, "between"), (1, "again")):
        publish(h, {"topic": "/dup", "id": "urn:dup:%d" % i, "data": d}, tok=tok)
    s = Sub(h, q(match="/dup", last_event_id="urn:dup:1"))
    check(datas(s, 2) == ["between", "again"], "replay did not resume after the earliest copy")
    s.close()


# ---------------------------------------------------------------- active subscriptions, metadata

def t_subscription_events(h):
    """Subscription events: topic /.well-known/mercure/subscriptions/{match_type}/{match}/
    {subscriber} (canonical lower-case type, each variable percent-encoded once), SSE event type
    `mercure`, JSON with type `subscription`, `match_type`, `match`, `subscriber`, `active`; the
    subscriber id is unique per connection (a random urn:uuid, never the token's bare sub)."""
    w = Sub(h, q(match_urlpattern="/.well-known/mercure/subscriptions/:t/:m/:s"),
            {"Authorization": "Bearer " + t8(h, ["subscribe"])})
    check(w.status == 200, w.status)
    # Two connections with one token (sub "urn:se:1"): distinct random ids, sub not shown.
    tok = t8(h, ["subscribe"], sub="urn:se:1")
    c = Sub(h, q(match_urlpattern="/se/:id"), {"Authorization": "Bearer " + tok})
    c2 = Sub(h, q(match_urlpattern="/se/:id"), {"Authorization": "Bearer " + tok})
    evs = [e for e in w.events(4, 2.0) if "/se/" in e["data"]]
    check(len(evs) == 2 and all(e.get("event") == "mercure" for e in evs), evs)
    docs = [json.loads(e["data"]) for e in evs]
    for doc in docs:
        enc = urllib.parse.quote(doc["subscriber"], safe="")
        want_id = "/.well-known/mercure/subscriptions/urlpattern/%2Fse%2F%3Aid/" + enc
        check(doc["id"] == want_id and doc["type"] == "subscription", doc)
        check(doc["match_type"] == "urlpattern" and doc["match"] == "/se/:id", doc)
        check(doc["subscriber"].startswith("urn:uuid:") and doc["active"] is True, doc)
        check("matchType" not in doc and "@context" not in doc, doc)
    check(docs[0]["subscriber"] != docs[1]["subscriber"], "one id for two connections")
    c.close()
    c2.close()
    w.close()


def t_subscriptions_api(h):
    """The API answers application/json; the cursor is the `last-event-id` attribute of the
    rel="mercure" Link (with type="mercure", content-type="application/json"); collections are
    {id, type: subscriptions, subscriptions}."""
    c = Sub(h, q(match="/api/x"), {"Authorization": "Bearer " + t8(h, ["subscribe"])})
    publish(h, {"topic": "/api/x", "id": "urn:api:last"}, tok=t8(h))
    rt = t8(h, ["subscribe"])
    st, _, body = request(h, "GET", "/.well-known/mercure/subscriptions/exact/%2Fapi%2Fx",
                          headers={"Authorization": "Bearer " + rt})
    check(st == 200, (st, body))
    one = urllib.parse.quote(json.loads(body)["subscriptions"][0]["subscriber"], safe="")
    for path in ("/.well-known/mercure/subscriptions",
                 "/.well-known/mercure/subscriptions/exact/%2Fapi%2Fx",
                 "/.well-known/mercure/subscriptions/exact/%2Fapi%2Fx/" + one):
        st, hd, body = request(h, "GET", path, headers={"Authorization": "Bearer " + rt})
        check(st == 200 and hd.get("content-type") == "application/json", (path, st, hd))
        link = hd.get("link", "")
        check('rel="mercure"' in link and 'last-event-id="urn:api:last"' in link, (path, link))
        check('type="mercure"' in link and 'content-type="application/json"' in link, link)
        doc = json.loads(body)
        check("lastEventID" not in doc and "@context" not in doc, doc)
        if path.endswith(one):
            check(doc["type"] == "subscription" and doc["match_type"] == "exact", doc)
        else:
            check(doc["type"] == "subscriptions" and doc["id"] == path, doc)
            check(any(x["match"] == "/api/x" for x in doc["subscriptions"]), doc)
    c.close()


def t_metadata(h):
    """Protected resource metadata: `resource`, `bearer_methods_supported` only ["header"], the
    cookie named in `mercure_cookie` (a string), the detail type, `mercure_subscriptions`, and no
    version member."""
    st, hd, body = request(h, "GET", "/.well-known/oauth-protected-resource/.well-known/mercure")
    check(st == 200 and hd.get("content-type") == "application/json", (st, hd))
    doc = json.loads(body)
    check(doc["resource"] == aud(h), doc)
    check(doc["bearer_methods_supported"] == ["header"], doc)
    check(doc["mercure_cookie"] == "__Secure-mercure_access_token", doc)
    check(doc["authorization_details_types_supported"] ==
          ["https://mercure.rocks/authorization-detail"], doc)
    check(doc.get("mercure_subscriptions") is True and "mercure_version" not in doc, doc)


# ---------------------------------------------------------------- draft-07 unchanged

def t_draft07_only_unchanged(h7):
    """A draft-07-only hub: several topics, `*`, type `mercure` and id `earliest` are still
    accepted, the reserved namespace still answers 403, the authorization query parameter and
    the Last-Event-ID response header are as before, no Mercure-Last-Event-ID."""
    pub = tok07(publish=["*"], subscribe=["*"])
    for fields in ({"topic": ["/a", "/b"]}, {"topic": "*"}, {"topic": "/a", "type": "mercure"},
                   {"topic": "/a", "id": "earliest"}):
        check(publish(h7, fields, tok=pub)[0] == 200, fields)
    check(publish(h7, {"topic": "/.well-known/mercure/x"}, tok=pub)[0] == 403, "reserved")
    publish(h7, {"topic": "/r7", "id": "urn:r7:1"}, tok=pub)
    s = Sub(h7, q(topic="/r7", lastEventID="urn:r7:1", authorization=pub))
    check(s.status == 200 and s.headers.get("last-event-id") == "urn:r7:1", s.headers)
    check("mercure-last-event-id" not in s.headers, s.headers)
    s.close()


def main():
    h = Hub("--protocol", "draft-08", "--publisher-jwt-key", KEY, "--subscriptions", "--anonymous",
            "--issuer", ISS, "--history-count", "100")
    hb = Hub("--publisher-jwt-key", KEY, "--anonymous")  # both drafts, no --issuer
    h7 = Hub("--protocol", "draft-07", "--publisher-jwt-key", KEY, "--anonymous")
    tests = [
        ("matcher_parameter_names", t_matcher_parameter_names, (h,)),
        ("format_characters_refused", t_format_characters_refused, (h,)),
        ("alternate_topics", t_alternate_topics, (h,)),
        ("reserved_values_400", t_reserved_values_400, (h,)),
        ("authorization_detail_type", t_authorization_detail_type, (h,)),
        ("unknown_match_type_invalid", t_unknown_match_type_invalid, (h,)),
        ("unknown_action_ignored", t_unknown_action_ignored, (h,)),
        ("iss_required", t_iss_required, (h, hb)),
        ("token_in_url_refused", t_token_in_url_refused, (h,)),
        ("cookie_name", t_cookie_name, (h,)),
        ("mercure_last_event_id", t_mercure_last_event_id, (h,)),
        ("duplicate_id_earliest_copy", t_duplicate_id_earliest_copy, (h,)),
        ("subscription_events", t_subscription_events, (h,)),
        ("subscriptions_api", t_subscriptions_api, (h,)),
        ("metadata", t_metadata, (h,)),
        ("draft07_only_unchanged", t_draft07_only_unchanged, (h7,)),
    ]
    return th.run_cases(tests, th.ONLY)


if __name__ == "__main__":
    sys.exit(main())
