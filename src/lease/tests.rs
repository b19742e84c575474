use super::*;

const GO_HELD: &[u8] = b"{\"version\":1,\"ownerID\":\"24866-1795664371031210457-1\",\"pid\":24866,\"lastHeartbeatUnixNano\":1795664371031285549}\n";

fn sample() -> Lease {
    Lease {
        owner_id: "42-1700000000000000000-1".into(),
        pid: 42,
        last_heartbeat_unix_nano: 1_700_000_000_123_456_789,
        identity: Some(std::sync::Arc::new(OwnerIdentity {
            hostname: "box".into(),
            boot_id: "b0".into(),
            pid_namespace: "4026531836".into(),
            process_start: "123".into(),
            time_namespace: Some("4026531834".into()),
        })),
        heartbeat_boot_nano: Some(5_000_000_000),
        acquired_unix_nano: Some(1_700_000_000_000_000_000),
        token: Some(1_700_000_000_000_001),
        metadata_json: Some("{\"url\":\"http://localhost:5173/\"}".into()),
    }
}

#[test]
fn go_fixture_parses() {
    let l = parse(GO_HELD).unwrap();
    assert_eq!(l.pid, 24866);
    assert_eq!(l.owner_id, "24866-1795664371031210457-1");
    assert!(l.identity.is_none());
    assert!(l.token.is_none());
}

#[test]
fn encode_starts_like_go_and_round_trips() {
    let l = sample();
    let bytes = l.encode();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("{\"version\":1,\"ownerID\":\"42-1700000000000000000-1\",\"pid\":42,\"lastHeartbeatUnixNano\":1700000000123456789,"));
    assert!(text.ends_with("}\n") && !text.ends_with("}\n\n"));
    assert_eq!(parse(&bytes).unwrap(), l);
    // The heartbeat rewrite keeps the length, and patching equals encoding.
    let hb = l.with_heartbeat(1_700_000_009_999_999_999, Some(123_456_789_012_345));
    assert_eq!(hb.encode().len(), bytes.len());
    let mut patched = bytes.clone();
    assert!(patch_heartbeat(&mut patched, &hb));
    assert_eq!(patched, hb.encode());
    // A width change is refused, not mangled.
    let mut short = bytes.clone();
    assert!(!patch_heartbeat(&mut short, &l.with_heartbeat(5, Some(1))));
    assert_eq!(short, bytes);
}

#[test]
fn go_only_record_encodes_exactly_like_go() {
    let l = parse(GO_HELD).unwrap();
    assert_eq!(l.encode(), GO_HELD);
}

#[test]
fn go_rules() {
    let ok = |s: &str| parse(s.as_bytes()).is_ok();
    let base = r#""ownerID":"o","pid":5,"lastHeartbeatUnixNano":9"#;
    assert!(ok(&format!("{{\"version\":1,{base}}}")));
    assert!(ok(&format!(" \r\n\t{{\"version\":1,{base}}}\n\n ")));
    assert!(ok(&format!("{{\"VERSION\":1,{base}}}")));
    assert!(ok(&format!("{{\"ver\u{017F}ion\":1,{base}}}")));
    assert!(ok(&format!("{{\"version\":2,\"version\":1,{base}}}")));
    assert!(!ok(&format!("{{\"version\":1,\"version\":2,{base}}}")));
    assert!(ok(&format!("{{\"version\":1,\"version\":null,{base}}}")));
    assert!(ok(&format!(
        "{{\"version\":1,\"x\":[1,{{\"a\":[]}}],{base}}}"
    )));
    assert!(!ok(&format!("{{\"version\":1,{base},\"x\":\"\u{1}\"}}")));
    assert!(!ok(&format!("{{\"version\":1.0,{base}}}")));
    assert!(!ok(&format!("{{\"version\":1e0,{base}}}")));
    assert!(!ok(&format!("{{\"version\":\"1\",{base}}}")));
    assert!(!ok(&format!("{{\"version\":1,{base}}}x")));
    assert!(!ok(&format!("{{\"version\":1,{base}}}{{}}")));
    assert!(!ok(&format!("{{\"version\":01,{base}}}")));
    assert!(!ok(&format!(
        "{{\"version\":1,\"pid\":99999999999999999999,{base}}}"
    )));
    assert!(!ok("null"));
    assert!(!ok(""));
    assert!(!ok("12345"));
    assert!(!ok("[]"));
    assert!(!ok(
        r#"{"version":1,"ownerID":"  ","pid":5,"lastHeartbeatUnixNano":9}"#
    ));
    assert!(!ok(
        r#"{"version":1,"ownerID":"o","pid":0,"lastHeartbeatUnixNano":9}"#
    ));
    assert!(!ok(
        r#"{"version":1,"ownerID":"o","pid":5,"lastHeartbeatUnixNano":-9}"#
    ));
    // Invalid UTF-8 inside a string is fine for Go.
    let mut v =
        b"{\"version\":1,\"ownerID\":\"o\xff\",\"pid\":5,\"lastHeartbeatUnixNano\":9}".to_vec();
    assert!(parse(&v).is_ok());
    // ...but not outside one.
    v.push(0xff);
    assert!(parse(&v).is_err());
}

#[test]
fn deep_nesting_does_not_overflow() {
    let mut s = String::from("{\"version\":1,\"x\":");
    s.push_str(&"[".repeat(200_000));
    s.push_str(&"]".repeat(200_000));
    s.push('}');
    assert_eq!(parse(s.as_bytes()), Err(Invalid::Syntax));
    let mut s =
        String::from(r#"{"ownerID":"o","pid":5,"lastHeartbeatUnixNano":9,"version":1,"x":"#);
    s.push_str(&"[".repeat(5000));
    s.push_str(&"]".repeat(5000));
    s.push('}');
    assert!(parse(s.as_bytes()).is_ok());
}

#[test]
fn possible_leases_are_only_what_a_lease_writer_can_leave() {
    let yes: &[&[u8]] = &[
        b"",
        b" \n\t\r",
        b"{",
        b"{\"ver",
        b"{\"version\":",
        b"{\"version\":1,\"ownerID\":\"4242-17",
        b"{\"version\":1,\"ownerID\":\"a\",\"pid\":1,\"lastHeart",
        b"{\"version\":2,\"ownerID\":\"a\",\"pid\":1,\"lastHeartbeatUnixNano\":1}",
        b"{\"version\":1,\"OWNERid\":\"  \",\"pid\":1,\"lastHeartbeatUnixNano\":1}",
        b"{\"ownerID\":7}",
        b" {\"ownerID\":\"a\",\"pid\":\"1\"}\n",
    ];
    for y in yes {
        assert!(possible_lease(y), "{:?}", String::from_utf8_lossy(y));
    }
    let no: &[&[u8]] = &[
        b"null",
        b"12345\n",
        b"[1,2]",
        b"\"text\"",
        b"{\"version\":1}",
        b"{\"name\":\"app\"}",
        b"{\n  \"name\": \"app\",\n  \"version\": \"1.0.0\"\n}\n",
        b"{\"version\":1,\"ownerID\":\"a\",\"pid\":1,\"lastHeartbeatUnixNano\":1}x",
        b"{\"version\":1,\"ownerID\":\"a\",\"pid\":1,\"lastHeartbeatUnixNano\":1}{}",
        b"not-a-lease-json",
        b"{\"ver\":1",
        b"{\"name\":\"a",
        b"\x7fELF\x02\x01",
    ];
    for n in no {
        assert!(!possible_lease(n), "{:?}", String::from_utf8_lossy(n));
    }
}

#[test]
fn nesting_depth_counts_arrays_and_objects_outside_strings() {
    use super::nests_deeper_than;
    assert!(!nests_deeper_than("{}", 1));
    assert!(nests_deeper_than("{\"a\":[]}", 1));
    assert!(!nests_deeper_than("{\"a\":\"[[[[\\\"[[\"}", 1));
    let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
    assert!(nests_deeper_than(&deep, 32));
    let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
    assert!(!nests_deeper_than(&ok, 32));
}
