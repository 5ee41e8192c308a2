"""Device profiles (Jetson, Raspberry Pi, mobile, desktop).

Not implemented yet: this subpackage reserves the import name
``affectedge.device_profiles``. See the project's open issues for the plan.
"""

__all__ = []
