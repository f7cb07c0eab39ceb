//! The blocking handle, from plain synchronous tests.

use std::net::TcpStream;
use std::time::Duration;

use konnect_sim::{Fault, SimConfig, blocking};

#[test]
fn blocking_sim_runs_on_its_own_thread_and_stops_when_dropped() {
    let sim = blocking::Sim::start(SimConfig::for_tests()).unwrap();
    let addr = sim.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert_eq!(sim.base_url(), format!("http://{addr}"));
    assert_eq!(sim.pat(), konnect_sim::DEMO_PAT);

    let report = sim.trigger("au", 4);
    assert_eq!((report.region.as_str(), report.generated), ("au", 4));
    assert!(report.deliveries.is_empty());
    sim.add_tunnel("x.test", addr);
    sim.inject_fault(Fault::status(None, "/v2/audit-log-webhook", 1, 502));
    sim.set_rate("me", 100.0);
    let busy = sim
        .wait_for(Duration::from_secs(5), |s| s.events_generated > 4)
        .expect("the rate generates events");
    assert_eq!(busy.tunnels["x.test"], addr.to_string());
    assert_eq!(busy.faults.len(), 1);
    sim.set_rate("me", 0.0);
    sim.reset();
    assert!(sim.snapshot().is_pristine());
    assert_eq!(sim.snapshot().events_generated, 0);

    drop(sim);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "closed after drop"
    );
}

#[test]
fn blocking_sim_seeds_portals_and_principals() {
    let sim = blocking::Sim::start(SimConfig::for_tests()).unwrap();
    let portal = sim.add_portal("eu", "Partner Portal").unwrap();
    assert!(sim.add_portal("eu", "Partner Portal").is_err());
    let developer = sim
        .add_portal_developer(&portal.id, "jane@example.test", "Jane Dev")
        .unwrap();
    let report = sim.trigger_portal(&portal.id, 3);
    assert_eq!(report.region, "eu");
    assert_eq!(report.portal_id.as_deref(), Some(portal.id.as_str()));
    assert_eq!(report.generated, 3);
    assert!(report.deliveries.is_empty(), "no webhook yet");
    let user = sim.add_user("ana@example.test", "Ana Admin").unwrap();
    let account = sim.add_system_account("ci", "pipelines").unwrap();
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.portals[0].developers, [developer]);
    assert_eq!(snapshot.users, [user]);
    assert_eq!(snapshot.system_accounts, [account]);
    assert_eq!(sim.request_count("GET", "/v3/portals"), 0);
    assert!(sim.contract_violations().is_empty());
    assert!(sim.remove_portal(&portal.id));
    sim.reset();
    assert!(sim.snapshot().users.is_empty());
}

#[tokio::test]
async fn blocking_sim_can_be_used_inside_another_runtime() {
    // The calls block this thread while the emulator's own runtime works.
    let sim = blocking::Sim::start(SimConfig::for_tests()).unwrap();
    let report = sim.trigger("us", 2);
    assert_eq!(report.generated, 2);
    sim.shutdown();
}
