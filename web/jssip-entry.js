// Entry point of the JsSIP bundle (phone/jssip.min.js): exposes the
// library as window.JsSIP for the /phone page.
import JsSIP from 'jssip';

window.JsSIP = JsSIP;
