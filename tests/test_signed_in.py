"""Where the customer is signed in (contract: GET /api/sessions and its actions): every live
session and remembered PC, and ending them, each an event; nobody else's."""

from __future__ import annotations

from sqlalchemy import select
from starlette.testclient import TestClient

from server.models import SecurityEvent
from conftest import ORIGIN, add_customer, login


def browser(app, agent):
    return TestClient(app, headers={"Origin": ORIGIN, "User-Agent": agent})


WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/18.0 Mobile/15E148 Safari/604.1")


def kinds(app) -> list[str]:
    return [e.kind for e in app.state.ctx.db.run_sync(lambda d: list(d.execute(select(SecurityEvent))))]


def test_the_list_shows_each_browser_and_ending_one_ends_it_there(app, customer, mailsink):
    with browser(app, WINDOWS) as pc, browser(app, IPHONE) as phone:
        login(pc, mailsink)
        login(phone, mailsink, remember=True)
        listed = pc.get("/api/sessions").json()
        assert len(listed["sessions"]) == 2
        mine = [s for s in listed["sessions"] if s["current"]]
        other = [s for s in listed["sessions"] if not s["current"]]
        assert len(mine) == 1 and mine[0]["browser"] == "Windows の Chrome"
        assert other[0]["browser"].startswith("iPhone") and other[0]["ip"]
        assert len(listed["trusted_devices"]) == 1  # the phone was remembered
        assert "id_hash" not in str(listed) and pc.cookies["tobira_session"] not in str(listed)
        assert pc.request("DELETE", f"/api/sessions/{other[0]['id']}").status_code == 204
        assert phone.get("/api/session").status_code == 401  # ended there
        assert pc.get("/api/session").status_code == 200
        device = listed["trusted_devices"][0]["id"]
        assert pc.request("DELETE", f"/api/trusted-devices/{device}").status_code == 204
        assert pc.get("/api/sessions").json()["trusted_devices"] == []
    assert {"session_ended", "trusted_device_forgotten"} <= set(kinds(app))


def test_sign_out_everywhere_else_keeps_this_one(app, customer, mailsink):
    clients = [browser(app, WINDOWS) for _ in range(3)]
    for c in clients:
        login(c, mailsink)
    assert clients[0].post("/api/sessions/end-others").status_code == 204
    assert [c.get("/api/session").status_code for c in clients] == [200, 401, 401]
    assert len(clients[0].get("/api/sessions").json()["sessions"]) == 1
    assert "other_sessions_ended" in kinds(app)
    for c in clients:
        c.close()


def test_ending_this_session_logs_this_browser_out(app, customer, mailsink):
    with browser(app, WINDOWS) as pc:
        login(pc, mailsink)
        mine = pc.get("/api/sessions").json()["sessions"][0]["id"]
        r = pc.request("DELETE", f"/api/sessions/{mine}")
        assert r.status_code == 204 and "max-age=0" in r.headers["set-cookie"].lower()
        assert pc.get("/api/session").status_code == 401


def test_another_customers_sessions_and_pcs_are_not_found(app, customer, mailsink):
    add_customer(app, code="HANA5678", email="hana@example.com", name="花子")
    with browser(app, WINDOWS) as taro, browser(app, IPHONE) as hana:
        login(taro, mailsink)
        login(hana, mailsink, code="HANA5678", email="hana@example.com", remember=True)
        hers = hana.get("/api/sessions").json()
        for path in (f"/api/sessions/{hers['sessions'][0]['id']}", f"/api/trusted-devices/{hers['trusted_devices'][0]['id']}",
                     "/api/sessions/nope", "/api/sessions/" + "A" * 22, "/api/trusted-devices/99999",
                     "/api/trusted-devices/-1"):
            r = taro.request("DELETE", path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
        assert hana.get("/api/session").status_code == 200
        assert len(hana.get("/api/sessions").json()["trusted_devices"]) == 1


def test_without_a_login_nothing_is_listed_or_ended(client):
    assert client.get("/api/sessions").status_code == 401
    assert client.post("/api/sessions/end-others").status_code == 401
    assert client.request("DELETE", "/api/sessions/" + "x" * 22).status_code == 401


def test_the_page_lists_them(app, customer, mailsink):
    with browser(app, WINDOWS) as pc, browser(app, IPHONE) as phone:
        login(pc, mailsink)
        login(phone, mailsink)
        page = pc.get("/account/devices")
        assert page.status_code == 200 and page.text.count("data-session-id=") == 2
        assert 'data-current="yes"' in page.text and 'id="end-others"' in page.text
