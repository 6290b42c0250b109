#![no_main]
//! Bodies a cash register POSTs to the ECR API (payments, refunds, contract charges), checked
//! as the handlers check them before they look anything up.

use libfuzzer_sys::fuzz_target;
use payterm::core::authcode::default_rules;
use payterm::core::money::Amount;

fuzz_target!(|data: &[u8]| {
    let _ = payterm::fuzzing::ecr_bodies(data, Amount::from_fen(5_000_00), &default_rules());
});
