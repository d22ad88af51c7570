"""The conformance scenarios, as data (verbs: steps.py).

Each scenario: {"name", "about", "containers": {label: spec options},
"steps": [(verb, target, ..., {options})]}. Spec options: args (default
sleep 1000), host_pid (no PID namespace of its own), group (the
io.containerd.runc.v2.group annotation), deferred (no shim start up front).
"""

SLEEP = ("sleep", "1000")

# How each state of the init is reached (c1 = the container).
INIT_STATES = {
    "unknown": [],
    "created": [("create", "c1")],
    "running": [("create", "c1"), ("start", "c1")],
    "paused": [("create", "c1"), ("start", "c1"), ("pause", "c1")],
    "stopped": [("create", "c1"), ("start", "c1"), ("kill", "c1", 9), ("wait", "c1")],
    "deleted": [("create", "c1"), ("start", "c1"), ("kill", "c1", 9), ("wait", "c1"),
                ("delete", "c1")],
}

# How each state of an exec is reached (its init runs).
RUNNING = [("create", "c1"), ("start", "c1")]
EXEC_STATES = {
    "unknown": RUNNING,
    "created": RUNNING + [("exec", "c1:e1")],
    "running": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1")],
    "paused": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1"), ("pause", "c1")],
    "stopped": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1"), ("kill", "c1:e1", 9),
                          ("wait", "c1:e1")],
    "deleted": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1"), ("kill", "c1:e1", 9),
                          ("wait", "c1:e1"), ("delete", "c1:e1")],
}

# A paused container is resumed before the scenario ends so its processes can die.
RESUME_IF_PAUSED = {"paused": [("resume", "c1")]}


def article(state):
    return f"{'an' if state[0] in 'aeiou' else 'a'} {state}"


def init_state_scenarios():
    out = []
    for state, setup in INIT_STATES.items():
        probes = [("state", "c1"), ("pids", "c1"), ("stats", "c1"), ("update", "c1"),
                  ("resize", "c1"), ("closeio", "c1"), ("connect", "c1"),
                  ("checkpoint", "c1")]
        if state in ("unknown", "stopped", "deleted"):
            probes.append(("wait", "c1"))
        else:
            probes += [("wait_bg", "c1"), ("wait_blocked", "c1")]
        out.append({"name": f"init-{state}-queries",
                    "about": f"State, Pids, Stats, Update, ResizePty, CloseIO, Connect, "
                             f"Checkpoint, Wait on {article(state)} init",
                    "steps": setup + probes + RESUME_IF_PAUSED.get(state, [])})
        mutations = {
            "start": [("start", "c1")],
            "delete": [("delete", "c1")],
            "kill": [("kill", "c1", 9)] + ([("resume", "c1")] if state == "paused" else [])
            + ([("until", "c1", "STOPPED")] if state != "unknown" else []),
            "pause": [("pause", "c1")],
            "resume": [("resume", "c1")],
            "exec": [("exec", "c1:e1"), ("state", "c1:e1")],
        }
        for verb, steps in mutations.items():
            tail = [("state", "c1")]
            if state == "paused" and verb not in ("resume", "delete", "kill"):
                tail = [("resume", "c1")] + tail
            out.append({"name": f"init-{state}-{verb}",
                        "about": f"{verb.capitalize()} on {article(state)} init",
                        "steps": setup + steps + tail,
                        "unordered_events": state == "paused" and verb == "kill"})
    return out


def exec_state_scenarios():
    out = []
    for state, setup in EXEC_STATES.items():
        probes = [("state", "c1:e1"), ("resize", "c1:e1"), ("closeio", "c1:e1")]
        if state in ("unknown", "stopped", "deleted"):
            probes.append(("wait", "c1:e1"))
        else:
            probes += [("wait_bg", "c1:e1"), ("wait_blocked", "c1:e1")]
        out.append({"name": f"exec-{state}-queries",
                    "about": f"State, ResizePty, CloseIO, Wait on {article(state)} exec",
                    "steps": setup + probes + RESUME_IF_PAUSED.get(state, [])})
        for verb, steps in {"start": [("start", "c1:e1")],
                            "delete": [("delete", "c1:e1")],
                            "kill": [("kill", "c1:e1", 9)]
                            + ([("resume", "c1")] if state == "paused" else [])
                            + ([("until", "c1:e1", "STOPPED")]
                               if state in ("created", "running", "paused") else [])}.items():
            tail = [("state", "c1:e1"), ("state", "c1")]
            if state == "paused" and verb != "kill":
                tail = [("resume", "c1")] + tail
            out.append({"name": f"exec-{state}-{verb}",
                        "about": f"{verb.capitalize()} on {article(state)} exec",
                        "steps": setup + steps + tail,
                        "unordered_events": state == "paused" and verb == "kill"})
    return out


# The stock shim passes bad ids to the runtime: an exec id with "/" or ".." makes the
# runtime write its pid file outside the bundle, a NUL truncates the id. These scenarios
# are not compared with the stock shim: cshim must refuse the id with InvalidArgument
# before any runtime call, and then not know it.
def bad_id_scenarios():
    out = []
    for bad in ("slash", "dotdot", "nul", "newline", "long"):
        t = f"!{bad}"
        out.append({"name": f"bad-container-id-{bad}",
                    "about": f"Create, State, Kill, Delete with container id {bad!r}",
                    "steps": [("create", t), ("state", t), ("kill", t, 9), ("delete", t)],
                    "expect": {f"steps.1:create {t}.code": "InvalidArgument",
                               f"steps.2:state {t}.code": "NotFound",
                               f"steps.3:kill {t} 9.code": "NotFound",
                               f"steps.4:delete {t}.code": "NotFound",
                               "events.#": 0,
                               "bundle_files.c1.init.pid": "<absent>",
                               "bundle_files.c1.log.json": "<absent>",
                               "alive.c1": 0}})
        t = f"c1:!{bad}"
        out.append({"name": f"bad-exec-id-{bad}",
                    "about": f"Exec, State, Start, Kill, Delete with exec id {bad!r}",
                    "steps": RUNNING + [("exec", t), ("state", t), ("start", t), ("kill", t, 9),
                                        ("until", t, "STOPPED"), ("delete", t), ("pids", "c1")],
                    "expect": {f"steps.3:exec {t}.code": "InvalidArgument",
                               f"steps.4:state {t}.code": "NotFound",
                               f"steps.5:start {t}.code": "NotFound",
                               f"steps.6:kill {t} 9.code": "NotFound",
                               f"steps.7:until {t} STOPPED.code": "NotFound",
                               f"steps.8:delete {t}.code": "NotFound",
                               "steps.9:pids c1.count": 1,
                               "events.#": 2,
                               f"bundle_files.c1.<pid file of exec !{bad}>": "<absent>",
                               "alive.c1": 1}})
    return out


LIFECYCLE = [
    {"name": "create-kill-wait",
     "about": "A created, never started task is killed; the parked Wait answers",
     "steps": [("create", "c1"), ("wait_bg", "c1"), ("kill", "c1", 9), ("wait_join", "c1"),
               ("state", "c1"), ("delete", "c1")]},
    {"name": "create-kill-wait-direct",
     "about": "A created task is killed, then Wait is called",
     "steps": [("create", "c1"), ("kill", "c1", 9), ("wait", "c1"), ("state", "c1"),
               ("delete", "c1")]},
    {"name": "create-delete",
     "about": "A created task is deleted without start",
     "steps": [("create", "c1"), ("delete", "c1"), ("state", "c1"), ("wait", "c1")],
     # The runtime's delete kills the created init; the stock shim publishes its TaskExit
     # only when its reaper got there before Delete dropped the container (usually).
     "optional_events": ("/tasks/exit",)},
    {"name": "create-kill-delete",
     "about": "A created task is killed and deleted at once",
     "steps": [("create", "c1"), ("kill", "c1", 9), ("until", "c1", "STOPPED"),
               ("delete", "c1"), ("state", "c1")]},
    {"name": "start-twice",
     "about": "Start on an init that already runs",
     "steps": RUNNING + [("start", "c1"), ("state", "c1")]},
    {"name": "exec-before-start",
     "about": "Exec and start an exec while the init is only created",
     "steps": [("create", "c1"), ("exec", "c1:e1"), ("state", "c1:e1"), ("start", "c1:e1"),
               ("state", "c1:e1"), ("state", "c1")]},
    {"name": "exec-id-twice",
     "about": "An exec id used again while created, running and exited",
     "steps": RUNNING + [("exec", "c1:e1"), ("exec", "c1:e1"), ("start", "c1:e1"),
                         ("exec", "c1:e1"), ("kill", "c1:e1", 9), ("wait", "c1:e1"),
                         ("exec", "c1:e1"), ("delete", "c1:e1"), ("exec", "c1:e1"),
                         ("state", "c1:e1")]},
    {"name": "kill-exec-never-started",
     "about": "Kill of an exec that was added but never started",
     "steps": RUNNING + [("exec", "c1:e1"), ("kill", "c1:e1", 9), ("state", "c1:e1"),
                         ("delete", "c1:e1"), ("state", "c1:e1")]},
    {"name": "delete-running-exec",
     "about": "Delete of a running exec, then kill, wait, delete",
     "steps": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1"), ("delete", "c1:e1"),
                         ("state", "c1:e1"), ("kill", "c1:e1", 9), ("wait", "c1:e1"),
                         ("delete", "c1:e1"), ("state", "c1:e1")]},
    {"name": "wait-after-delete",
     "about": "Wait on an init and on an exec after their delete",
     "steps": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1"), ("kill", "c1:e1", 9),
                         ("wait", "c1:e1"), ("delete", "c1:e1"), ("wait", "c1:e1"),
                         ("kill", "c1", 9), ("wait", "c1"), ("delete", "c1"), ("wait", "c1")]},
    {"name": "pause-kill-wait",
     "about": "SIGKILL to a paused init, then resume and wait",
     "unordered_events": True,
     "steps": RUNNING + [("pause", "c1"), ("wait_bg", "c1"), ("kill", "c1", 9),
                         ("resume", "c1"), ("wait_join", "c1"),
                         ("state", "c1")]},
    {"name": "pause-resume-twice",
     "about": "Pause and resume twice each",
     "steps": RUNNING + [("pause", "c1"), ("pause", "c1"), ("state", "c1"), ("resume", "c1"),
                         ("resume", "c1"), ("state", "c1")]},
    {"name": "closeio-twice",
     "about": "CloseIO twice on an init reading stdin (cat gets EOF and exits 0)",
     "containers": {"c1": {"args": ["cat"]}},
     "steps": [("create", "c1", {"io": "fifo"}), ("start", "c1"), ("closeio", "c1"),
               ("closeio", "c1"), ("wait", "c1"), ("state", "c1")]},
    {"name": "init-exits-with-execs",
     "about": "The init is killed while an exec runs (own PID namespace)",
     "steps": [("create", "c1", {"io": "fifo"}), ("start", "c1"),
               ("exec", "c1:e1", {"io": "fifo"}), ("start", "c1:e1"), ("kill", "c1", 9),
               ("wait", "c1"), ("wait", "c1:e1"), ("state", "c1:e1"), ("pids", "c1")]},
    {"name": "init-exits-host-pid",
     "about": "The init dies in a container sharing the host PID namespace; its exec and "
              "a background child hold stdout",
     "containers": {"c1": {"host_pid": True,
                           "args": ["sh", "-c", "sleep 1000 & exec sleep 1001"]}},
     "steps": [("create", "c1", {"io": "fifo"}), ("start", "c1"),
               ("exec", "c1:e1", {"io": "fifo"}), ("start", "c1:e1"), ("kill", "c1", 9),
               ("wait", "c1"), ("wait", "c1:e1"), ("state", "c1:e1")]},
    {"name": "exit-races-start",
     "about": "An init that exits at once (/bin/true)",
     "containers": {"c1": {"args": ["true"]}},
     "steps": [("create", "c1"), ("start", "c1"), ("wait", "c1"), ("state", "c1"),
               ("delete", "c1")]},
    {"name": "exec-exit-races-start",
     "about": "An exec that exits at once (/bin/true)",
     "steps": RUNNING + [("exec", "c1:e1", {"args": ["true"]}), ("start", "c1:e1"),
                         ("wait", "c1:e1"), ("state", "c1:e1"), ("delete", "c1:e1")]},
    {"name": "exit-status",
     "about": "Exit statuses of an init (3) and an exec (5)",
     "containers": {"c1": {"args": ["sh", "-c", "read x; exit 3"]}},
     "steps": [("create", "c1", {"io": "fifo"}), ("start", "c1"),
               ("exec", "c1:e1", {"args": ["sh", "-c", "exit 5"]}), ("start", "c1:e1"),
               ("wait", "c1:e1"), ("delete", "c1:e1"), ("closeio", "c1"), ("wait", "c1"),
               ("delete", "c1")]},
    {"name": "kill-sigterm",
     "about": "Signal 0, then SIGTERM to an exec (143), then signal 0 again",
     "steps": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1"), ("kill", "c1:e1", 0),
                         ("kill", "c1:e1", 15), ("wait", "c1:e1"), ("kill", "c1:e1", 0)]},
    {"name": "kill-sigterm-init",
     "about": "SIGTERM to an init without a handler (PID 1 ignores it), then SIGKILL",
     "steps": RUNNING + [("kill", "c1", 15), ("state", "c1"), ("kill", "c1", 9),
                         ("wait", "c1")]},
    {"name": "kill-all",
     "about": "Kill with all while an exec runs",
     "steps": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1"), ("kill", "c1", 9, {"all": True}),
                         ("wait", "c1"), ("wait", "c1:e1"), ("state", "c1:e1")]},
    {"name": "kill-all-created",
     "about": "Kill with all on a created task",
     "steps": [("create", "c1"), ("kill", "c1", 9, {"all": True}), ("until", "c1", "STOPPED"),
               ("delete", "c1")]},
    {"name": "exec-bad-binary",
     "about": "Exec of a missing binary",
     # crun's child for the failed exec may still be exiting at the end: with the stock
     # shim alone the count is 1 or 2 (--stability), so it is not compared here.
     "compare_alive": False,
     "steps": RUNNING + [("exec", "c1:e1", {"args": ["/nonexistent"]}), ("start", "c1:e1"),
                         ("state", "c1:e1"), ("delete", "c1:e1")]},
    {"name": "create-bad-binary",
     "about": "Create of an init whose binary is missing",
     "containers": {"c1": {"args": ["/nonexistent"]}},
     "steps": [("create", "c1"), ("state", "c1"), ("start", "c1"), ("delete", "c1")]},
    {"name": "execs-leave-no-files",
     "about": "Three execs run to completion and are deleted; what stays in the bundle",
     "steps": RUNNING + [("exec", "c1:e1", {"args": ["true"]}), ("start", "c1:e1"),
                         ("wait", "c1:e1"), ("delete", "c1:e1"),
                         ("exec", "c1:e2", {"args": ["true"]}), ("start", "c1:e2"),
                         ("wait", "c1:e2"), ("delete", "c1:e2"),
                         ("exec", "c1:e3", {"args": ["true"]}), ("start", "c1:e3"),
                         ("wait", "c1:e3"), ("pids", "c1")]},
    {"name": "pids-with-exec",
     "about": "Pids lists the init and an exec (with its exec id)",
     "steps": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1"), ("pids", "c1")]},
    {"name": "delete-running-init",
     "about": "Delete of a running init with a running exec",
     "steps": RUNNING + [("exec", "c1:e1"), ("start", "c1:e1"), ("delete", "c1"),
                         ("state", "c1"), ("state", "c1:e1")]},
    {"name": "shutdown-alive",
     "about": "Shutdown while the task runs: the shim stays",
     "steps": RUNNING + [("shutdown", "c1"), ("probe", "c1"), ("state", "c1")]},
    {"name": "shutdown-now-alive",
     "about": "Shutdown with now=true while the task runs",
     "steps": RUNNING + [("shutdown", "c1", {"now": True}), ("probe", "c1"),
                         ("state", "c1")]},
    {"name": "shutdown-empty",
     "about": "Shutdown of a shim that never created anything",
     "steps": [("shutdown", "c1"), ("shim_exit", "c1")]},
    {"name": "shutdown-after-delete",
     "about": "The usual end of a task: kill, wait, delete, shutdown",
     "steps": RUNNING + [("kill", "c1", 9), ("wait", "c1"), ("delete", "c1"),
                         ("shutdown", "c1"), ("shim_exit", "c1")]},
    {"name": "group-two-containers",
     "about": "Two containers grouped in one shim; one is deleted, the other stays",
     "containers": {"c1": {"group": True}, "c2": {"group": True}},
     "steps": [("create", "c1"), ("create", "c2"), ("start", "c1"), ("start", "c2"),
               ("kill", "c2", 9), ("wait", "c2"), ("delete", "c2"), ("state", "c2"),
               ("state", "c1"), ("pids", "c1"), ("shutdown", "c2"), ("probe", "c1"),
               ("state", "c1")]},
    {"name": "group-delete-last",
     "about": "Two grouped containers; both deleted, then Shutdown ends the shim",
     "containers": {"c1": {"group": True}, "c2": {"group": True}},
     "steps": [("create", "c1"), ("create", "c2"), ("start", "c1"), ("start", "c2"),
               ("kill", "c1", 9), ("wait", "c1"), ("delete", "c1"), ("kill", "c2", 9),
               ("wait", "c2"), ("delete", "c2"), ("shutdown", "c1"), ("shim_exit", "c1")]},
    {"name": "second-connection",
     "about": "A new connection after the first one closed sees the task and its exit",
     "steps": RUNNING + [("reconnect", "c1"), ("state", "c1"), ("wait_bg", "c1"),
                         ("reconnect", "c1"), ("kill", "c1", 9), ("wait_join", "c1"),
                         ("state", "c1")]},
    {"name": "unknown-exec-of-unknown-container",
     "about": "Exec on a container the shim does not know",
     "steps": [("exec", "zz:e1"), ("state", "zz:e1"), ("kill", "zz", 9), ("delete", "zz")]},
]


def all_scenarios():
    scenarios = init_state_scenarios() + exec_state_scenarios() + LIFECYCLE
    scenarios += bad_id_scenarios()
    names = [s["name"] for s in scenarios]
    assert len(names) == len(set(names)), "duplicate scenario names"
    return scenarios


SCENARIOS = {s["name"]: s for s in all_scenarios()}
