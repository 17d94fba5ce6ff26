"""The analysts' and integrators' commands: ``engagement publish`` (:mod:`.publish`),
``signals`` (:mod:`.signals`, also a consumer client for Python services), ``simulate``
(:mod:`.simulate` over :mod:`.population`), ``fit`` (:mod:`.fit`) and ``retention``
(:mod:`.retention`); :mod:`.args` holds what their command lines share."""
