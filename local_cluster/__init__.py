"""The local cluster of API.md 1.1 (`make run`): the services as plain processes under a supervisor
(supervisord, which restarts whatever exits), behind nginx balancers on the addresses users are given.

- ``layout``: how many of each, on which ports, from ``OSAGO_*_INSTANCES``; the environment the
  services get (without those variables, which only this tooling reads);
- ``nginx``: the balancers' configuration, generated for the instance counts;
- ``supervisor``: supervisord's configuration, one program per instance;
- ``__main__``: ``python -m local_cluster run | status | nginx-config``.
"""
