# The seed's worker-node script, with only `ray` renamed to `tsray`.
# Run (with examples/07-cluster/head.ts running): .venv/bin/python examples/07-cluster/worker_node.py
import tsray

if __name__ == "__main__":
    tsray.init(address="auto")
    scheduler = tsray.get_actor(name="scheduler", namespace="head")
    inputs = [f"test{i}" for i in range(10)]
    if scheduler is None:
        print("ModelServer not found in the cluster")
    else:
        result = tsray.get(scheduler.schedule.remote(inputs))
        print(result)

    while True:
        pass
