"""Telephony: Twilio webhooks, Media Streams, TwiML, signatures and the Twilio stand-in."""
