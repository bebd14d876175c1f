//! Password hashing reuses its working memory (alone in this test binary, so that no
//! other test hashes meanwhile).

use charter_vault::password::{buffers_allocated, check_password, hash_password};

#[test]
fn working_memory_is_reused_not_reallocated() {
    let hash = hash_password("pw");
    assert_eq!(buffers_allocated(), 1);
    for i in 0..10 {
        assert_eq!(check_password(&format!("pw{i}"), &hash), Ok(false));
    }
    assert_eq!(buffers_allocated(), 1, "one hash at a time needs one buffer, whatever the count");
    // A hash with other parameters needs a buffer of another size: one more is allocated.
    let other = "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWg";
    assert_eq!(check_password("pw", other), Ok(false));
    assert_eq!(buffers_allocated(), 2);
    for _ in 0..5 {
        let threads: Vec<_> = (0..3).map(|i| std::thread::spawn(move || hash_password(&format!("pw{i}")))).collect();
        threads.into_iter().for_each(|t| drop(t.join().unwrap()));
    }
    assert!(buffers_allocated() <= 5, "at most one buffer per hash running at once: {}", buffers_allocated());
}
