"""The one path of every event, whoever delivers it: intake (limits, signature, parse;
inline or hand-over) → record → decide → write → signal, in one transaction."""
