"""Running the MQTT broker (Mosquitto or embedded amqtt), its supervision, credentials, ACL and
TLS; may import store/, devices/, loa."""
