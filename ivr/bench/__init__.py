"""`ivr bench`: how many calls one box carries, measured from Twilio's side of the line."""
