"""Several speakers in one home, through the home's MQTT broker ([mqtt] in the config).

- `arbitration`: which speaker answers a wake word that several heard (pure, no I/O);
- `topics`: the topics, the state payload and Home Assistant's discovery payloads (pure);
- `link`: the connection to the broker (aiomqtt), imported only when [mqtt] has a host.
"""
