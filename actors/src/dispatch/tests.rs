use super::*;

fn unit(id: &str) -> UnitId {
    UnitId::parse(id).unwrap()
}

fn cand(id: &str, d: f64) -> Candidate {
    Candidate { unit: unit(id), distance_m: d, eta_s: (d / 10.0) as u32 }
}

fn plan(required: u8, max_offers: u16) -> ResponsePlan {
    ResponsePlan { units_required: required, max_offers, ..ResponsePlan::school_alarm_default() }
}

fn offers(effects: &[Effect]) -> Vec<(OfferId, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Offer { offer_id, unit, .. } => Some((*offer_id, unit.to_string())),
            _ => None,
        })
        .collect()
}

fn find(effects: &[Effect]) -> Option<(usize, Vec<String>)> {
    effects.iter().find_map(|e| match e {
        Effect::FindUnits { count, exclude } => {
            Some((*count, exclude.iter().map(|u| u.to_string()).collect()))
        }
        _ => None,
    })
}

#[test]
fn start_acks_received_and_asks_for_the_plan_size() {
    let mut d = Dispatch::new(plan(2, 10));
    let fx = d.start();
    assert_eq!(fx[0], Effect::Ack { state: AckState::Received, eta_s: None });
    assert_eq!(find(&fx), Some((2, vec![])));
}

#[test]
fn offers_the_nearest_units_and_dispatches_on_accept() {
    let mut d = Dispatch::new(plan(2, 10));
    d.start();
    let fx = d.on_candidates(vec![cand("a", 100.0), cand("b", 200.0)], 2);
    let o = offers(&fx);
    assert_eq!(o.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(find(&fx).is_none(), "no search while both offers are out");
    let fx = d.on_accept(o[1].0).unwrap();
    assert_eq!(fx, vec![Effect::Ack { state: AckState::Dispatched, eta_s: Some(20) }]);
    assert_eq!(d.state(), IncidentState::Dispatching, "one of two");
    let fx = d.on_accept(o[0].0).unwrap();
    assert_eq!(fx, vec![Effect::Ack { state: AckState::Dispatched, eta_s: Some(10) }]);
    assert_eq!(d.state(), IncidentState::Dispatched);
}

#[test]
fn decline_and_timeout_move_to_the_next_unit_not_yet_asked() {
    let mut d = Dispatch::new(plan(1, 10));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 100.0)], 1));
    let fx = d.on_offer_ended(o[0].0, OfferEnd::Declined).unwrap();
    assert_eq!(find(&fx), Some((1, vec!["a".into()])));
    let o = offers(&d.on_candidates(vec![cand("b", 300.0)], 1));
    assert_eq!(o[0].1, "b");
    let fx = d.on_offer_ended(o[0].0, OfferEnd::TimedOut).unwrap();
    assert!(matches!(fx[0], Effect::Revoke { reason: RevokeReason::Expired, .. }));
    assert_eq!(find(&fx), Some((1, vec!["a".into(), "b".into()])));
}

#[test]
fn a_dispatcher_can_send_a_unit_that_declined_before_outside_the_budget() {
    let mut d = Dispatch::new(plan(1, 1));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 100.0)], 1));
    let fx = d.on_offer_ended(o[0].0, OfferEnd::Declined).unwrap();
    assert!(fx.iter().any(|e| matches!(e, Effect::Escalate { .. })), "{fx:?}");
    assert_eq!(d.state(), IncidentState::Uncovered);
    let fx = d.assign(cand("a", 100.0), None).unwrap();
    let o = offers(&fx);
    assert_eq!(o.len(), 1, "offered although the budget is spent");
    assert_eq!(d.assign(cand("a", 100.0), None), Err(DispatchError::AlreadyOn(unit("a"))));
    d.on_accept(o[0].0).unwrap();
    assert_eq!(d.state(), IncidentState::Dispatched);
}

#[test]
fn a_reassignment_stands_the_old_unit_down_and_steps_the_state_back() {
    let mut d = Dispatch::new(plan(1, 10));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 100.0)], 1));
    d.on_accept(o[0].0).unwrap();
    d.on_progress(&unit("a"), Progress::EnRoute).unwrap();
    assert_eq!(d.state(), IncidentState::EnRoute);
    assert_eq!(
        d.assign(cand("b", 50.0), Some(&unit("c"))),
        Err(DispatchError::NotAssigned(unit("c"))),
        "replacing a unit not on it changes nothing"
    );
    let fx = d.assign(cand("b", 50.0), Some(&unit("a"))).unwrap();
    assert_eq!(fx[0], Effect::CancelAssignment { unit: unit("a") });
    assert_eq!(offers(&fx)[0].1, "b");
    assert_eq!(d.state(), IncidentState::Dispatching, "nobody on the way until b accepts");
    assert!(d.assigned().is_empty());
    // Replacing a pending offer withdraws it.
    let fx = d.assign(cand("c", 70.0), Some(&unit("b"))).unwrap();
    assert!(
        matches!(&fx[0], Effect::Revoke { unit: u, reason: RevokeReason::Reassigned, .. } if u == &unit("b"))
    );
    assert_eq!(d.pending().len(), 1);
    d.cancel();
    assert_eq!(d.assign(cand("d", 1.0), None), Err(DispatchError::NotOpen));
}

#[test]
fn a_candidate_already_asked_is_skipped() {
    let mut d = Dispatch::new(plan(1, 10));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 100.0)], 1));
    d.on_offer_ended(o[0].0, OfferEnd::Declined).unwrap();
    let fx = d.on_candidates(vec![cand("a", 100.0), cand("b", 200.0)], 1);
    assert_eq!(offers(&fx)[0].1, "b");
}

#[test]
fn no_unit_at_all_escalates_as_uncovered() {
    let mut d = Dispatch::new(plan(2, 10));
    d.start();
    let fx = d.on_candidates(vec![], 2);
    assert_eq!(
        fx,
        vec![
            Effect::Ack { state: AckState::Escalated, eta_s: None },
            Effect::Escalate { reason: EscalationReason::NoUnitsLeft }
        ]
    );
    assert_eq!(d.state(), IncidentState::Uncovered);
}

#[test]
fn escalation_waits_for_offers_in_flight() {
    let mut d = Dispatch::new(plan(2, 10));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 100.0)], 2));
    assert_eq!(o.len(), 1);
    assert_eq!(d.escalated(), None, "a is still deciding");
    let fx = d.on_offer_ended(o[0].0, OfferEnd::Declined).unwrap();
    let fx2 = d.on_candidates(vec![], find(&fx).unwrap().0);
    assert!(fx2.contains(&Effect::Escalate { reason: EscalationReason::NoUnitsLeft }));
}

#[test]
fn an_escalated_incident_keeps_looking_and_is_covered_when_a_unit_frees_up() {
    let mut d = Dispatch::new(plan(1, 10));
    d.start();
    d.on_candidates(vec![], 1);
    assert_eq!(d.state(), IncidentState::Uncovered);
    let fx = d.retry();
    assert_eq!(find(&fx), Some((1, vec![])));
    assert!(d.retry().is_empty(), "one search at a time");
    assert!(d.on_candidates(vec![], 1).is_empty(), "escalated once only");
    d.retry();
    let o = offers(&d.on_candidates(vec![cand("late", 50.0)], 1));
    let fx = d.on_accept(o[0].0).unwrap();
    assert_eq!(fx, vec![Effect::Ack { state: AckState::Dispatched, eta_s: Some(5) }]);
    assert_eq!(d.state(), IncidentState::Dispatched);
    assert!(d.retry().is_empty(), "covered: nothing more to look for");
}

#[test]
fn partial_cover_escalates_but_stays_dispatched() {
    let mut d = Dispatch::new(plan(2, 10));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 100.0)], 2));
    let fx = d.on_accept(o[0].0).unwrap();
    assert_eq!(find(&fx), Some((1, vec!["a".into()])), "one more unit is still needed");
    let fx = d.on_candidates(vec![], 1);
    assert_eq!(fx, vec![Effect::Escalate { reason: EscalationReason::NoUnitsLeft }]);
    assert_eq!(d.escalated(), Some(EscalationReason::NoUnitsLeft));
    assert_eq!(d.state(), IncidentState::Dispatching);
}

#[test]
fn the_offer_budget_limits_attempts() {
    let mut d = Dispatch::new(plan(1, 2));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 1.0)], 1));
    d.on_offer_ended(o[0].0, OfferEnd::Declined).unwrap();
    let o = offers(&d.on_candidates(vec![cand("b", 2.0)], 1));
    let fx = d.on_offer_ended(o[0].0, OfferEnd::Declined).unwrap();
    assert!(fx.contains(&Effect::Escalate { reason: EscalationReason::OfferLimitReached }));
    assert!(find(&fx).is_none());
}

#[test]
fn a_refused_offer_does_not_spend_the_budget() {
    let mut d = Dispatch::new(plan(1, 1));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 1.0)], 1));
    let fx = d.on_offer_ended(o[0].0, OfferEnd::Refused).unwrap();
    assert_eq!(find(&fx), Some((1, vec!["a".into()])));
}

#[test]
fn progress_runs_to_closure_when_every_unit_cleared() {
    let mut d = Dispatch::new(plan(2, 10));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 1.0), cand("b", 2.0)], 2));
    d.on_accept(o[0].0).unwrap();
    d.on_accept(o[1].0).unwrap();
    let (a, b) = (unit("a"), unit("b"));
    assert!(d.on_progress(&a, Progress::EnRoute).unwrap().is_empty());
    assert_eq!(d.state(), IncidentState::EnRoute);
    let fx = d.on_progress(&a, Progress::OnScene).unwrap();
    assert_eq!(fx, vec![Effect::Ack { state: AckState::OnScene, eta_s: None }]);
    assert!(d.on_progress(&b, Progress::OnScene).unwrap().is_empty(), "on scene is acked once");
    assert!(d.on_progress(&a, Progress::Cleared).unwrap().is_empty());
    assert!(d.state().is_open());
    let fx = d.on_progress(&b, Progress::Cleared).unwrap();
    assert_eq!(fx, vec![Effect::Ack { state: AckState::Cleared, eta_s: None }, Effect::Closed]);
    assert_eq!(d.state(), IncidentState::Closed);
}

#[test]
fn progress_from_a_stranger_or_backwards_is_refused() {
    let mut d = Dispatch::new(plan(1, 10));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 1.0)], 1));
    assert_eq!(d.on_progress(&unit("x"), Progress::EnRoute), Err(DispatchError::NotAssigned(unit("x"))));
    d.on_accept(o[0].0).unwrap();
    d.on_progress(&unit("a"), Progress::OnScene).unwrap();
    assert!(matches!(
        d.on_progress(&unit("a"), Progress::EnRoute),
        Err(DispatchError::ProgressBackwards { .. })
    ));
    assert_eq!(d.on_accept(o[0].0), Err(DispatchError::UnknownOffer(o[0].0)), "accepted twice");
}

#[test]
fn cancel_revokes_offers_and_tells_assigned_units() {
    let mut d = Dispatch::new(plan(2, 10));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 1.0), cand("b", 2.0)], 2));
    d.on_accept(o[0].0).unwrap();
    let fx = d.cancel();
    assert_eq!(fx[0], Effect::Ack { state: AckState::Cancelled, eta_s: None });
    assert!(fx.contains(&Effect::CancelAssignment { unit: unit("a") }));
    assert!(fx.contains(&Effect::Revoke {
        offer_id: o[1].0,
        unit: unit("b"),
        reason: RevokeReason::Cancelled
    }));
    assert_eq!(fx.last(), Some(&Effect::Closed));
    assert_eq!(d.state(), IncidentState::Cancelled);
    assert!(d.cancel().is_empty(), "cancel is idempotent");
}

#[test]
fn a_new_alarm_at_an_incident_whose_unit_is_gone_stands_it_down_and_seeks_again() {
    let mut d = Dispatch::new(plan(1, 10));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 1.0)], 1));
    d.on_accept(o[0].0).unwrap();
    d.on_progress(&unit("a"), Progress::OnScene).unwrap();
    assert!(d.rejoin(&[], false).is_empty(), "a unit working it: the alarm just joins");
    let fx = d.rejoin(&[unit("a")], false);
    assert!(fx.contains(&Effect::CancelAssignment { unit: unit("a") }));
    assert_eq!(find(&fx), Some((1, vec!["a".into()])), "another unit is sought");
    assert_eq!(d.state(), IncidentState::Dispatching);
    let o = offers(&d.on_candidates(vec![cand("b", 5.0)], 1));
    let fx = d.on_accept(o[0].0).unwrap();
    assert_eq!(fx[0], Effect::Ack { state: AckState::Dispatched, eta_s: Some(0) });
}

#[test]
fn a_new_alarm_after_long_on_scene_gets_a_fresh_round_and_keeps_the_incident_open() {
    let mut d = Dispatch::new(plan(1, 1));
    d.start();
    let o = offers(&d.on_candidates(vec![cand("a", 1.0)], 1));
    d.on_accept(o[0].0).unwrap();
    d.on_progress(&unit("a"), Progress::OnScene).unwrap();
    let fx = d.rejoin(&[], true);
    assert_eq!(find(&fx), Some((1, vec!["a".into()])), "one more unit, within a fresh budget");
    // The first unit clears while the second is sought: the incident stays open.
    assert!(d.on_progress(&unit("a"), Progress::Cleared).unwrap().is_empty());
    assert!(d.state().is_open());
    let o = offers(&d.on_candidates(vec![cand("b", 5.0)], 1));
    d.on_accept(o[0].0).unwrap();
    d.on_progress(&unit("b"), Progress::OnScene).unwrap();
    let fx = d.on_progress(&unit("b"), Progress::Cleared).unwrap();
    assert_eq!(fx.last(), Some(&Effect::Closed), "closed once every unit has cleared");
}

#[test]
fn a_record_without_rounds_reads_as_none() {
    let mut v = serde_json::to_value(Dispatch::new(plan(1, 1))).unwrap();
    v.as_object_mut().unwrap().remove("rounds");
    let d: Dispatch = serde_json::from_value(v).unwrap();
    assert_eq!(d.rounds, 0);
}
