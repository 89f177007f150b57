//! A FewRel record (tokens and entity token indexes) never panics when converted, and what is
//! accepted is a valid instance.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tkre::text::{FewRelRecord, RelationInstance};

fuzz_target!(|data: &[u8]| {
    let Ok(record) = serde_json::from_slice::<FewRelRecord>(data) else {
        return;
    };
    if let Ok(instance) = RelationInstance::from_fewrel(&record) {
        assert!(instance.validate().is_ok());
    }
});
