"""Router (issue 5 builds it)."""


class Router:
    @classmethod
    def from_config(cls, config, redis, keys):
        raise NotImplementedError("the router is not built yet")
