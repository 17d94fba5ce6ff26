"""The analysts' and integrators' commands: ``engagement publish`` (:mod:`.publish`),
``signals`` (:mod:`.signals`, also a consumer client for Python services), ``dead-letters``
(:mod:`.dead_letters`), ``simulate`` (:mod:`.simulate` over :mod:`.population`), ``fit``
(:mod:`.fit`), ``retention`` (:mod:`.retention`) and ``settings`` (:mod:`.settings_view`);
:mod:`.args` holds what their command lines share."""
