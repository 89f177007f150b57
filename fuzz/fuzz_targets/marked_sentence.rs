//! The marked-sentence parser never panics, and what it accepts writes back to the same
//! instance.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tkre::text::RelationInstance;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(instance) = RelationInstance::from_marked(text) {
        let again = RelationInstance::from_marked(&instance.to_marked())
            .expect("a parsed instance's marked form parses again");
        assert_eq!(again, instance);
        assert!(instance.validate().is_ok());
    }
});
