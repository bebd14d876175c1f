//! The embedded TensorOpera policy is valid and states what the seed states.

use charter_policy::{load, TENSOROPERA, TENSOROPERA_NAME};

#[test]
fn embedded_policy_is_valid() {
    if let Err(e) = load(TENSOROPERA_NAME, TENSOROPERA) {
        panic!("{e}");
    }
}
