"""The Python actor of tsray's TS -> Python actor benchmark (the same class as Ray's ray_perf.Actor)."""


class Actor:
    def small_value(self):
        return b"ok"
