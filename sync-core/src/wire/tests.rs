//! Round trips: every wire type reads back what it wrote, and reads the JSON
//! the other side writes (fixed samples, so a change of form shows here).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::doc::Mention;
use crate::ids::{HouseholdId, UnitId, UserId};
use crate::org::{Membership, Role};
use crate::policy::{Refusal, Rule};

/// `value` survives JSON, and `sample` (what the other side sends) reads as `value`.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T, sample: &str) {
    let json = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json} does not read back: {e}"));
    assert_eq!(&back, value, "{json}");
    let read: T = serde_json::from_str(sample).unwrap_or_else(|e| panic!("{sample} does not read: {e}"));
    assert_eq!(&read, value, "{sample}");
}

#[test]
fn error_bodies() {
    round_trip(
        &ErrorBody::new("not_found", "no such petition"),
        r#"{"error":{"code":"not_found","message":"no such petition"}}"#,
    );
    let mut refused = ErrorBody::new("refused", "refused by rule not-member: x");
    refused.error.refused.push(Refusal {
        change: "ab".into(),
        rule: Rule::NotMember,
        detail: "x".into(),
    });
    round_trip(
        &refused,
        r#"{"error":{"code":"refused","message":"refused by rule not-member: x",
            "refused":[{"change":"ab","rule":"not-member","detail":"x"}]}}"#,
    );
    let mut set_aside = ErrorBody::new("set_aside", "already signed");
    set_aside.error.rule = Some("already-signed".into());
    round_trip(
        &set_aside,
        r#"{"error":{"code":"set_aside","message":"already signed","rule":"already-signed"}}"#,
    );
}

#[test]
fn close_codes() {
    for c in CloseCode::ALL {
        assert_eq!(CloseCode::from_code(c.code()), Some(*c));
    }
    assert_eq!(CloseCode::Unauthorized.code(), 4001);
    assert_eq!(CloseCode::from_code(1000), None);
}

#[test]
fn me() {
    round_trip(
        &Me {
            id: UserId::new("res-zhang").unwrap(),
            display_name: "张大爷".into(),
            kind: AccountKind::Resident,
            memberships: vec![Membership {
                unit: UnitId::new("village-a").unwrap(),
                role: Role::Resident,
            }],
            household: Some(HouseholdId::new("hh-1").unwrap()),
        },
        r#"{"id":"res-zhang","display_name":"张大爷","kind":"resident",
            "memberships":[{"unit":"village-a","role":"resident"}],"household":"hh-1"}"#,
    );
}

#[test]
fn key_sets() {
    round_trip(
        &KeySet {
            issuer: "county".into(),
            keys: vec![PublicKey {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
                kid: "k1".into(),
                x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
                status: "retired".into(),
                retired_at: Some(5),
            }],
        },
        r#"{"issuer":"county","keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"k1",
            "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","status":"retired","retired_at":5}]}"#,
    );
}

#[test]
fn station_directories() {
    round_trip(
        &StationDirectory {
            units: vec![UnitView {
                id: UnitId::new("st-a").unwrap(),
                name: "甲派出所".into(),
                kind: crate::org::UnitKind::Station,
                parent: Some(UnitId::new("county").unwrap()),
                disabled: false,
            }],
            clocks: ClockSettings {
                rules: crate::ClockRules::default(),
                calendar: crate::Calendar::default(),
            },
            people: vec![StationPerson {
                id: UserId::new("officer-a").unwrap(),
                login_name: Some("officer-a".into()),
                display_name: "王警官".into(),
                phone: None,
                kind: AccountKind::Staff,
                household: None,
                disabled: true,
                password_hash: Some("$argon2id$x".into()),
                memberships: vec![Membership {
                    unit: UnitId::new("st-a").unwrap(),
                    role: Role::Officer,
                }],
            }],
            rosters: vec![],
        },
        &format!(
            r#"{{"units":[{{"id":"st-a","name":"甲派出所","kind":"station","parent":"county"}}],
                "clocks":{},
                "people":[{{"id":"officer-a","login_name":"officer-a","display_name":"王警官","kind":"staff",
                  "disabled":true,"password_hash":"$argon2id$x",
                  "memberships":[{{"unit":"st-a","role":"officer"}}]}}]}}"#,
            serde_json::to_string(&ClockSettings {
                rules: crate::ClockRules::default(),
                calendar: crate::Calendar::default(),
            })
            .unwrap()
        ),
    );
}

#[test]
fn station_rosters() {
    let roster = crate::notify::Roster::from_json(
        r#"{"unit":"st-a","shifts":[{"days":["monday"],"start":"08:00","end":"20:00","members":["officer-a"]}]}"#,
    )
    .unwrap();
    let sent = StationRosters {
        rosters: vec![StationRoster {
            unit: UnitId::new("st-a").unwrap(),
            roster: roster.clone(),
            updated_by: UserId::new("chief-a").unwrap(),
            updated_at: 1_700_000_000_000,
        }],
    };
    round_trip(
        &sent,
        &format!(
            r#"{{"rosters":[{{"unit":"st-a","roster":{},"updated_by":"chief-a","updated_at":1700000000000}}]}}"#,
            roster.to_json()
        ),
    );
    round_trip(
        &StationRosterResults {
            results: vec![
                StationRosterResult {
                    unit: UnitId::new("st-a").unwrap(),
                    outcome: RosterOutcome::Stored,
                    detail: None,
                },
                StationRosterResult {
                    unit: UnitId::new("st-b").unwrap(),
                    outcome: RosterOutcome::Refused,
                    detail: Some("not in the station's jurisdiction".into()),
                },
            ],
        },
        r#"{"results":[{"unit":"st-a","outcome":"stored"},
            {"unit":"st-b","outcome":"refused","detail":"not in the station's jurisdiction"}]}"#,
    );
}

#[test]
fn inbox_pages() {
    let item = InboxItem {
        cursor: 7,
        user: "officer-li".into(),
        key: "k".into(),
        doc_id: "d".into(),
        doc: "automerge:d".into(),
        kind: "mention".into(),
        recipient: "user:officer-li".into(),
        entry: Some("e".into()),
        urgent: false,
        at_ms: 5,
        text: "有人@了你".into(),
        created_at: 6,
    };
    round_trip(
        &InboxPage {
            items: vec![item],
            next: 7,
            more: false,
            acked: 3,
        },
        r#"{"items":[{"cursor":7,"user":"officer-li","key":"k","doc_id":"d","doc":"automerge:d",
            "kind":"mention","recipient":"user:officer-li","entry":"e","urgent":false,"at_ms":5,
            "text":"有人@了你","created_at":6}],"next":7,"more":false,"acked":3}"#,
    );
    round_trip(&AckRequest { cursor: 9 }, r#"{"cursor":9}"#);
    round_trip(&AckResponse { acked: 9 }, r#"{"acked":9}"#);
}

#[test]
fn mentions_have_one_form_and_read_the_old_ones() {
    let all = Mention::All;
    let li = Mention::User(UserId::new("officer-li").unwrap());
    assert_eq!(serde_json::to_string(&all).unwrap(), r#""@all""#);
    assert_eq!(serde_json::to_string(&li).unwrap(), r#""officer-li""#);
    for old in [r#""@all""#, r#""all""#] {
        assert_eq!(serde_json::from_str::<Mention>(old).unwrap(), all, "{old}");
    }
    for old in [r#""officer-li""#, r#""@officer-li""#, r#"{"user":"officer-li"}"#] {
        assert_eq!(serde_json::from_str::<Mention>(old).unwrap(), li, "{old}");
    }
    assert!(serde_json::from_str::<Mention>(r#""bad id""#).is_err());
    // Documents keep the strict form: a user named "all" stays a user.
    assert_eq!(
        Mention::from_text("all").unwrap(),
        Mention::User(UserId::new("all").unwrap())
    );
}

#[test]
fn new_messages() {
    round_trip(
        &NewMessage {
            text: "@all 注意".into(),
            mentions: vec![Mention::All, Mention::User(UserId::new("officer-li").unwrap())],
            reply_to: None,
            attachments: vec![],
            tag: Some("reminders".into()),
        },
        r#"{"text":"@all 注意","mentions":["@all","officer-li"],"tag":"reminders"}"#,
    );
}
