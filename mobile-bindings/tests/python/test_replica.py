"""The Python bindings against a real `lianxin` server on port 0.

Run by `cargo test -p lianxin-mobile --test python` (which builds the library,
generates the bindings and sets the variables below), or by hand:

    LIANXIN_BIN=target/debug/lianxin LIANXIN_BINDINGS_DIR=<generated dir> \
        python3 -m unittest discover -s mobile-bindings/tests/python -v
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.environ.get("LIANXIN_BINDINGS_DIR", "."))

import lianxin_mobile as lx  # noqa: E402

ORG = """
[[units]]
id = "county"
name = "青山县"
kind = "county"

[[units]]
id = "station-east"
name = "东山派出所"
kind = "station"
parent = "county"

[[units]]
id = "village-a"
name = "东村"
kind = "village"
parent = "station-east"

[[users]]
id = "officer-li"
display_name = "李警官"
login = "li"
password = "officer password"
memberships = [{ unit = "station-east", role = "officer" }]

[[users]]
id = "res-zhang"
display_name = "张大爷"
kind = "resident"
phone = "13800000001"
household = "hh-1"
memberships = [{ unit = "village-a", role = "resident" }]
"""

UNITS = [
    lx.UnitRecord(id="county", name="青山县", kind="county", parent=None),
    lx.UnitRecord(id="station-east", name="东山派出所", kind="station", parent="county"),
    lx.UnitRecord(id="village-a", name="东村", kind="village", parent="station-east"),
]


class Server:
    """A `lianxin serve` process on 127.0.0.1:0 with the organisation above."""

    def __init__(self):
        self.bin = os.environ["LIANXIN_BIN"]
        self.dir = tempfile.mkdtemp(prefix="lianxin-py-")
        self.env = dict(os.environ, LIANXIN_JWT_SECRET="python-suite-secret-of-at-least-32-bytes", RUST_LOG="warn")
        org = os.path.join(self.dir, "org.toml")
        with open(org, "w", encoding="utf-8") as f:
            f.write(ORG)
        self.admin("import", org)
        self.proc = subprocess.Popen(
            [self.bin, "--data-dir", self.dir, "--listen", "127.0.0.1:0", "serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            text=True,
        )
        self.url = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            self.stop()
            raise RuntimeError("the server did not start: " + self.proc.stderr.read())
        # Keep draining the pipes so the server never blocks on a full one.
        for pipe in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=pipe.read, daemon=True).start()

    def admin(self, *args):
        out = subprocess.run(
            [self.bin, "--data-dir", self.dir, "admin", *args],
            capture_output=True,
            env=self.env,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def token(self, user):
        return self.admin("mint-token", "--user", user, "--ttl", "1h")

    def get(self, path, token):
        req = urllib.request.Request(self.url + path, headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read().decode("utf-8"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def session(server_url, user, memberships, household=None):
    return lx.SessionConfig(
        server_url=server_url,
        user_id=user,
        memberships=[lx.MembershipRecord(unit=u, role=r) for (u, r) in memberships],
        household=household,
        units=UNITS,
    )


def water_petition(title="自来水停了三天"):
    return lx.NewPetitionRecord(
        channel="director_mailbox",
        category="help",
        title=title,
        body="村东头的水管坏了，请派人来看看。",
        location_unit="village-a",
        routed_to="station-east",
        submitter=None,
        anonymous=False,
        contact="13800000001",
        attachments=[],
    )


class ReplicaAgainstServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.tokens = {u: cls.server.token(u) for u in ("officer-li", "res-zhang")}

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lianxin-replica-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def replica(self, name, config):
        r = lx.Replica.open(os.path.join(self.tmp, name + ".sqlite"), config)
        r.set_access_token(self.tokens[config.user_id])
        return r

    def resident(self):
        cfg = session(self.server.url, "res-zhang", [("village-a", "resident")], household="hh-1")
        return self.replica("resident", cfg)

    def officer(self, memberships=(("station-east", "officer"),), name="officer"):
        return self.replica(name, session(self.server.url, "officer-li", list(memberships)))

    def rest_petition(self, doc_id):
        status, view = self.server.get("/api/petitions/" + doc_id, self.tokens["officer-li"])
        self.assertEqual(status, 200)
        return view

    def test_an_offline_officer_and_a_resident_merge_and_the_server_shows_it(self):
        resident = self.resident()
        officer = self.officer()
        pid = resident.submit_petition(water_petition())
        self.assertTrue(resident.has_unsynced_changes())
        resident.sync_now()
        self.assertFalse(resident.has_unsynced_changes())
        report = officer.sync_now()
        self.assertTrue(any(isinstance(e, lx.SyncEvent.DOCUMENT_UPDATED) for e in report.events), report)
        self.assertIn(pid, [p.id for p in officer.list_petitions()])

        # The officer goes out of coverage: the server is unreachable.
        dead = session("http://127.0.0.1:9", "officer-li", [("station-east", "officer")])
        officer.update_session(dead)
        officer.act(pid, lx.PetitionVerb.SIGN(unit="station-east"))
        officer.act(pid, lx.PetitionVerb.CONTACT(unit="station-east", method="visit", note="上门查看了水管"))
        officer.act(pid, lx.PetitionVerb.REPLY(unit="station-east", text="水管已修好，请试用。"))
        options = lx.default_sync_options()
        options.max_attempts = 2
        options.initial_backoff_ms = 20
        with self.assertRaises(lx.LianxinError.Network):
            officer.sync_with(options)
        self.assertEqual(officer.get_petition(pid).summary.status, "replied")
        self.assertTrue(officer.has_unsynced_changes())

        # Meanwhile the resident comments and syncs.
        resident.act(pid, lx.PetitionVerb.COMMENT(text="谢谢，水来了", reply_to=None, attachments=[]))
        resident.sync_now()

        # Back in coverage.
        officer.update_session(session(self.server.url, "officer-li", [("station-east", "officer")]))
        officer.sync_now()
        resident.sync_now()
        self.assertFalse(officer.has_unsynced_changes())

        view = self.rest_petition(pid)
        self.assertEqual(view["summary"]["status"], "replied")
        kinds = [e["kind"] for e in view["timeline"]]
        self.assertEqual(kinds, ["submitted", "signed", "contacted", "replied"])
        self.assertEqual([m["text"] for m in view["conversation"]], ["谢谢，水来了"])
        for r in (officer, resident):
            local = r.get_petition(pid)
            self.assertEqual([e.kind for e in local.timeline], kinds)
            self.assertEqual([m.text for m in local.conversation], ["谢谢，水来了"])
            self.assertEqual(local.summary.status, "replied")

    def test_a_refused_edit_is_reported_and_the_valid_edits_are_kept(self):
        resident = self.resident()
        pid = resident.submit_petition(water_petition("路灯坏了"))
        resident.sync_now()
        # The phone still lists a leader membership the server no longer grants.
        officer = self.officer([("station-east", "officer"), ("station-east", "leader")], name="stale")
        officer.sync_now()
        officer.act(pid, lx.PetitionVerb.SUPERVISE(unit="station-east", note="尽快处理"))
        officer.act(pid, lx.PetitionVerb.REPLY(unit="station-east", text="已安排维修。"))
        report = officer.sync_now()

        refused = [e.edit for e in report.events if isinstance(e, lx.SyncEvent.EDIT_REFUSED)]
        self.assertEqual(len(refused), 1, report.events)
        self.assertEqual(refused[0].rule, "role-required")
        self.assertEqual(refused[0].what, "supervise for station-east")
        self.assertEqual(officer.refused_edits(), refused)
        self.assertFalse(officer.has_unsynced_changes())

        kinds = [e["kind"] for e in self.rest_petition(pid)["timeline"]]
        self.assertEqual(kinds, ["submitted", "replied"])
        self.assertEqual([e.kind for e in officer.get_petition(pid).timeline], kinds)
        self.assertTrue(officer.dismiss_refused_edit(refused[0].seq))
        self.assertEqual(officer.refused_edits(), [])

    def test_the_local_policy_refuses_with_a_clear_error(self):
        resident = self.resident()
        pid = resident.submit_petition(water_petition("邻里纠纷"))
        with self.assertRaises(lx.LianxinError.Refused) as caught:
            resident.act(pid, lx.PetitionVerb.SIGN(unit="station-east"))
        self.assertIn("role-required", str(caught.exception))
        with self.assertRaises(lx.LianxinError.InvalidInput):
            resident.act("no such id", lx.PetitionVerb.WITHDRAW(reason=None))
        elsewhere = self.replica("elsewhere", session(self.server.url, "res-zhang", [("village-a", "resident")]))
        unseen = elsewhere.submit_petition(water_petition("别处的诉求"))
        with self.assertRaises(lx.LianxinError.NotFound):
            resident.get_petition(unseen)

    def test_an_expired_or_missing_token_is_unauthorized(self):
        resident = self.resident()
        resident.set_access_token("not-a-token")
        with self.assertRaises(lx.LianxinError.Unauthorized):
            resident.sync_now()
        resident.set_access_token(None)
        with self.assertRaises(lx.LianxinError.Unauthorized):
            resident.sync_now()

    def test_automatic_sync_sends_edits_as_they_are_made(self):
        resident = self.resident()
        pid = resident.submit_petition(water_petition("井水有异味"))
        acked = threading.Event()
        heard = []

        class Listener(lx.SyncListener):
            def on_synced(self, report):
                heard.append(report)
                if any(isinstance(e, lx.SyncEvent.ACKNOWLEDGED) for e in report.events):
                    acked.set()

            def on_sync_error(self, kind, message, retry_in_ms):
                heard.append((kind, message, retry_in_ms))

        # A long interval: only the start and the edit itself can trigger a pass.
        resident.start_auto_sync(Listener(), lx.default_sync_options(), 3_600_000)
        try:
            self.assertTrue(acked.wait(30), heard)
            acked.clear()
            resident.act(pid, lx.PetitionVerb.COMMENT(text="味道越来越重", reply_to=None, attachments=[]))
            self.assertTrue(acked.wait(30), heard)
            with self.assertRaises(lx.LianxinError.InvalidInput):
                resident.start_auto_sync(Listener(), lx.default_sync_options(), 3_600_000)
        finally:
            resident.stop_auto_sync()
        self.assertEqual([m["text"] for m in self.rest_petition(pid)["conversation"]], ["味道越来越重"])
        # The connection was kept open between the passes.
        self.assertEqual(sum(r.connections for r in heard if isinstance(r, lx.SyncReport)), 1, heard)

    def test_notifications_arrive_after_a_sync(self):
        resident = self.resident()
        officer = self.officer(name="inbox")
        resident.submit_petition(water_petition("有人冒充客服要我转账"))
        resident.sync_now()
        report = officer.sync_now()
        self.assertIsNone(report.inbox_note, report)
        kinds = [n.kind for n in officer.notifications(False)]
        self.assertIn("new_petition", kinds)
        cursor = officer.inbox_cursor()
        self.assertEqual(officer.sync_now().notifications_added, 0)
        self.assertEqual(officer.inbox_cursor(), cursor)


class ReplicaOffline(unittest.TestCase):
    """What works with no server at all."""

    def test_an_inbox_page_fetched_by_the_app_is_stored_once(self):
        tmp = tempfile.mkdtemp(prefix="lianxin-replica-")
        try:
            cfg = session("http://127.0.0.1:9", "officer-li", [("station-east", "officer")])
            r = lx.Replica.open(os.path.join(tmp, "r.sqlite"), cfg)
            page = json.dumps(
                {
                    "items": [
                        {
                            "cursor": 7,
                            "user": "officer-li",
                            "key": "p-1/1750000000000.00000.r1/new_petition/unit:station-east",
                            "doc_id": "p-1",
                            "doc": "automerge:p-1",
                            "kind": "new_petition",
                            "recipient": "unit:station-east",
                            "entry": None,
                            "urgent": True,
                            "at_ms": 1750000000000,
                            "text": "新诉求：自来水停了三天",
                            "created_at": 1750000000001,
                        }
                    ],
                    "next": 7,
                    "more": False,
                    "acked": 0,
                }
            )
            self.assertEqual(r.receive_inbox(page), 1)
            self.assertEqual(r.receive_inbox(page), 0)
            self.assertEqual(r.inbox_cursor(), 7)
            [n] = r.notifications(True)
            self.assertEqual((n.kind, n.urgent, n.read), ("new_petition", True, False))
            self.assertEqual(r.mark_notifications_read(7), 1)
            self.assertEqual(r.notifications(True), [])
            with self.assertRaises(lx.LianxinError.Protocol):
                r.receive_inbox("not json")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
