use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("todo-core-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn open_creates_a_missing_directory() {
    let temp = TempDir::new("creates");
    let dir = temp.0.join("a/b");
    DirStorage::open(&dir).expect("open");
    assert!(dir.is_dir());
}

#[test]
fn open_refuses_a_path_that_is_a_file_and_names_it() {
    let temp = TempDir::new("file");
    fs::create_dir_all(&temp.0).expect("mkdir");
    let file = temp.0.join("plain");
    fs::write(&file, b"").expect("write");
    let error = DirStorage::open(&file).expect_err("a file is not a directory");
    assert!(
        error.to_string().contains(&format!("`{}`", file.display())),
        "{error}"
    );
    assert!(error.to_string().contains("TODO_DATA_DIR"), "{error}");
}

#[test]
fn values_round_trip_and_a_missing_key_is_none() {
    let temp = TempDir::new("roundtrip");
    let mut storage = DirStorage::open(&temp.0).expect("open");
    assert_eq!(storage.get("todo:1").expect("get"), None);
    storage.set("todo:1", b"one").expect("set");
    storage.set("todo:1", b"uno").expect("overwrite");
    assert_eq!(storage.get("todo:1").expect("get"), Some(b"uno".to_vec()));
    storage.delete("todo:1").expect("delete");
    storage
        .delete("todo:1")
        .expect("deleting a missing key is fine");
    assert_eq!(storage.get("todo:1").expect("get"), None);
}

#[test]
fn values_survive_reopening_the_directory() {
    let temp = TempDir::new("reopen");
    DirStorage::open(&temp.0)
        .expect("open")
        .set("next_id", b"5")
        .expect("set");
    let reopened = DirStorage::open(&temp.0).expect("reopen");
    assert_eq!(reopened.get("next_id").expect("get"), Some(b"5".to_vec()));
}

#[test]
fn keys_lists_keys_and_skips_temporary_and_foreign_files() {
    let temp = TempDir::new("keys");
    let mut storage = DirStorage::open(&temp.0).expect("open");
    storage.set("todo:1", b"x").expect("set");
    storage.set("next_id", b"2").expect("set");
    fs::create_dir_all(temp.0.join(".tmp")).expect("temp dir");
    fs::write(temp.0.join(".tmp/todo:2.0123"), b"half").expect("stray temp file");
    fs::write(temp.0.join("with space"), b"").expect("foreign file");
    let mut keys = storage.keys().expect("keys");
    keys.sort();
    assert_eq!(keys, ["next_id", "todo:1"]);
}

#[test]
fn keys_that_would_escape_the_directory_are_refused() {
    let temp = TempDir::new("badkeys");
    let mut storage = DirStorage::open(&temp.0).expect("open");
    let long = "k".repeat(MAX_KEY_LEN + 1);
    for key in ["", ".", "..", "../x", "a/b", ".hidden", long.as_str()] {
        assert!(
            matches!(storage.set(key, b"x"), Err(StoreError::BadKey(_))),
            "{key:?}"
        );
        assert!(
            matches!(storage.get(key), Err(StoreError::BadKey(_))),
            "{key:?}"
        );
    }
}

#[test]
fn create_sets_only_a_missing_key() {
    let temp = TempDir::new("create");
    let mut storage = DirStorage::open(&temp.0).expect("open");
    assert!(storage.create("todo:1", b"first").expect("create"));
    assert!(!storage.create("todo:1", b"second").expect("create again"));
    assert_eq!(storage.get("todo:1").expect("get"), Some(b"first".to_vec()));
    let mut keys = storage.keys().expect("keys");
    keys.sort();
    assert_eq!(keys, ["todo:1"], "no temporary file is left behind");
}

#[test]
fn of_many_racing_creators_exactly_one_wins() {
    let temp = TempDir::new("race");
    DirStorage::open(&temp.0).expect("open");
    let winners: usize = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..16)
            .map(|i| {
                let dir = temp.0.clone();
                scope.spawn(move || {
                    // Separate handles, as separate processes would have.
                    let mut storage = DirStorage::at(dir);
                    usize::from(
                        storage
                            .create("todo:7", format!("{i}").as_bytes())
                            .expect("create"),
                    )
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().expect("racer")).sum()
    });
    assert_eq!(winners, 1);
    assert_eq!(
        fs::read_dir(&temp.0).expect("list").count(),
        2,
        "todo:7 and .tmp"
    );
    assert_eq!(fs::read_dir(temp.0.join(".tmp")).expect("list").count(), 0);
}
