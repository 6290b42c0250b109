//! The face link against the simulated module over a real pseudo-terminal.

use super::sim::{SimBehaviour, SimConfig};
use super::*;
use crate::device::pty::open_pty;

fn timing() -> LinkTiming {
    LinkTiming {
        ack: Duration::from_millis(60),
        retries: 3,
        heartbeat: Duration::from_millis(500),
        reply: Duration::from_millis(500),
    }
}

struct Rig {
    face: FaceHandle,
    link: tokio::task::JoinHandle<LinkEnd>,
    sim: tokio::task::JoinHandle<usize>,
    events: mpsc::Receiver<DeviceEvent>,
    _keep: std::os::fd::OwnedFd,
}

fn rig(behaviour: SimBehaviour, face_delay_ms: u64) -> Rig {
    let (master, slave, keep) = open_pty().unwrap().into_parts();
    let sim = tokio::spawn(sim::serve(
        master,
        SimConfig {
            behaviour,
            face_delay: Duration::from_millis(face_delay_ms),
            ack_timeout: Duration::from_millis(60),
            retries: 3,
        },
    ));
    // The daemon side opens the pty by path through the real serial-port code.
    let port = crate::device::serial::open_port(
        &slave.to_string_lossy(),
        115200,
        8,
        crate::device::board::Parity::None,
        1,
        crate::device::board::FlowControl::None,
    )
    .unwrap();
    let (tx, events) = mpsc::channel(64);
    let (face, link) = spawn_link(port, timing(), Some(tx));
    Rig {
        face,
        link,
        sim,
        events,
        _keep: keep,
    }
}

fn start(txn: &str, timeout_ms: u64) -> msg::StartFace {
    msg::StartFace {
        txn_id: txn.into(),
        provider: "wechat".into(),
        amount_fen: 1234,
        currency: "CNY".into(),
        out_trade_no: format!("PT{txn}"),
        store_id: "S1".into(),
        timeout_ms,
    }
}

async fn authorise(face: &FaceHandle) {
    let raw = face.get_rawdata("wechat").await.unwrap();
    assert!(raw.expose().starts_with("SIMRAW"));
    face.send_authinfo(
        "wechat",
        Secret::new("AUTHINFO-FROM-GETFACEAUTH"),
        4_000_000_000,
    )
    .await
    .unwrap();
}

fn drain(rx: &mut mpsc::Receiver<DeviceEvent>) -> Vec<FaceEvent> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let DeviceEvent::Face(f) = e {
            v.push(f);
        }
    }
    v
}

#[tokio::test]
async fn success_rawdata_authinfo_face_code_openid() {
    let mut r = rig(SimBehaviour::Succeed, 100);
    authorise(&r.face).await;
    let out = r.face.start_face(start("T1", 5000)).await.unwrap();
    assert!(out.face_code.expose().starts_with("SIMFACE"));
    assert!(out.openid.expose().starts_with("oSIM"));
    assert_eq!(
        (out.txn_id.as_str(), out.provider.as_str()),
        ("T1", "wechat")
    );
    assert!(!format!("{out:?}").contains(out.face_code.expose()));
    r.face.pay_result("T1", "success", "paid").await.unwrap();
    let evs = drain(&mut r.events);
    assert!(
        evs.iter()
            .any(|e| matches!(e, FaceEvent::LinkUp { model, .. } if model == "sim-face"))
    );
    assert!(evs.iter().any(|e| matches!(e, FaceEvent::Progress { txn_id, stage } if txn_id == "T1" && stage == "detecting")));
    // A second recognition on the same link works too.
    let out2 = r.face.start_face(start("T2", 5000)).await.unwrap();
    assert_ne!(out2.face_code, out.face_code);
}

#[tokio::test]
async fn timeout_when_the_module_never_answers() {
    let r = rig(SimBehaviour::NeverAnswer, 50);
    authorise(&r.face).await;
    let t0 = Instant::now();
    let e = r.face.start_face(start("T1", 300)).await.unwrap_err();
    assert_eq!(e, FaceError::Timeout);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The link is still usable after a timeout.
    r.face.pay_result("T1", "fail", "timeout").await.unwrap();
}

#[tokio::test]
async fn cancel_stops_a_running_recognition() {
    let mut r = rig(SimBehaviour::Succeed, 5000);
    authorise(&r.face).await;
    let (tx, mut rx) = mpsc::channel(4);
    r.face.spawn_face_pay(start("T9", 10_000), tx);
    tokio::time::sleep(Duration::from_millis(150)).await;
    r.face.cancel("T9").await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&ev, DeviceEvent::Face(FaceEvent::Outcome { txn_id, result: Err(FaceError::Cancelled) }) if txn_id == "T9"),
        "{ev:?}"
    );
    // The module's own USER_CANCEL afterwards is acknowledged and ignored; the link still works.
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.face.pay_result("T9", "fail", "cancelled").await.unwrap();
    drain(&mut r.events);
}

#[tokio::test]
async fn corrupted_result_frame_is_dropped_and_the_resend_succeeds() {
    let r = rig(SimBehaviour::CorruptFirstResult, 50);
    authorise(&r.face).await;
    let t0 = Instant::now();
    let out = r.face.start_face(start("T1", 5000)).await.unwrap();
    assert!(out.face_code.expose().starts_with("SIMFACE"));
    // The intact copy can only come after the sim's ACK timeout.
    assert!(t0.elapsed() >= Duration::from_millis(50 + 60));
}

#[tokio::test]
async fn module_failure_code_is_reported() {
    let r = rig(SimBehaviour::Fail("LIVENESS_FAIL".into()), 50);
    authorise(&r.face).await;
    let e = r.face.start_face(start("T1", 5000)).await.unwrap_err();
    assert!(
        matches!(&e, FaceError::Module { code, .. } if code == "LIVENESS_FAIL"),
        "{e:?}"
    );
}

#[tokio::test]
async fn start_without_authinfo_is_refused_by_the_module() {
    let r = rig(SimBehaviour::Succeed, 50);
    let e = r.face.start_face(start("T1", 5000)).await.unwrap_err();
    assert!(
        matches!(&e, FaceError::Module { code, .. } if code == "NOT_READY"),
        "{e:?}"
    );
}

#[tokio::test]
async fn mute_module_means_link_down_after_retries() {
    let mut r = rig(SimBehaviour::Mute, 50);
    let t0 = Instant::now();
    let e = r.face.get_rawdata("wechat").await.unwrap_err();
    assert_eq!(e, FaceError::LinkDown);
    // 1 send + 3 retries, 60 ms apart.
    assert!(t0.elapsed() >= Duration::from_millis(240));
    let _ = drain(&mut r.events);
}

#[tokio::test]
async fn unplug_fails_the_running_request_and_ends_the_link() {
    let r = rig(SimBehaviour::NeverAnswer, 50);
    authorise(&r.face).await;
    let face = r.face.clone();
    let pending = tokio::spawn(async move { face.start_face(start("T1", 10_000)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.sim.abort(); // drops the pty master: the line hangs up
    let res = tokio::time::timeout(Duration::from_secs(3), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.unwrap_err(), FaceError::LinkDown);
    let end = tokio::time::timeout(Duration::from_secs(3), r.link)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(end, LinkEnd::Io(_)), "{end:?}");
}

#[tokio::test]
async fn open_face_module_sim_path_works_end_to_end() {
    let cfg = FaceConfig {
        path: "sim".into(),
        baud: 115200,
        ack_ms: 100,
        retries: 3,
        heartbeat_ms: 2000,
        face_timeout_ms: 10_000,
    };
    let (tx, mut rx) = mpsc::channel(64);
    let (face, _task) = open_face_module(&cfg, tx).unwrap();
    authorise(&face).await;
    let out = face.start_face(start("D1", 10_000)).await.unwrap();
    assert!(out.face_code.expose().starts_with("SIMFACE"));
    let first = rx.recv().await.unwrap();
    assert!(matches!(
        first,
        DeviceEvent::DeviceAdded {
            kind: DeviceKind::FaceModule,
            ..
        }
    ));
}
